"""Streaming resampling is continuous across calls: blocks join without a click."""
import numpy as np
import pytest
import soxr
from neurorave.models.runtime.resample import StreamResampler


@pytest.mark.parametrize("in_rate,out_rate", [(16000, 48000), (44100, 48000), (48000, 44100)])
def test_blocks_equal_whole_signal(in_rate, out_rate):
    rng = np.random.default_rng(0)
    signal = rng.standard_normal(in_rate // 2).astype(np.float32) * 0.1
    stream = StreamResampler(in_rate, out_rate)
    pieces = [stream.process(signal[i:i + 1024]) for i in range(0, len(signal), 1024)]
    pieces.append(stream.process(np.zeros(0, np.float32), last=True))
    streamed = np.concatenate(pieces)
    whole = soxr.resample(signal, in_rate, out_rate, quality="HQ").astype(np.float32)
    assert abs(len(streamed) - len(whole)) <= 2
    n = min(len(streamed), len(whole))
    assert np.max(np.abs(streamed[:n] - whole[:n])) < 1e-4


def test_sine_stays_smooth_across_block_edges():
    in_rate, out_rate, freq = 16000, 48000, 440.0
    t = np.arange(in_rate) / in_rate
    sine = (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    stream = StreamResampler(in_rate, out_rate)
    out = np.concatenate([stream.process(sine[i:i + 1024]) for i in range(0, len(sine), 1024)])
    steady = out[2000:-2000]
    # A click is a jump far above the largest step of a 440 Hz sine at 48 kHz.
    max_step = 0.5 * 2 * np.pi * freq / out_rate
    assert np.max(np.abs(np.diff(steady))) < 1.05 * max_step
    assert out.dtype == np.float32


def test_equal_rates_pass_through():
    stream = StreamResampler(48000, 48000)
    block = np.linspace(-1, 1, 256, dtype=np.float32)
    assert stream.passthrough
    assert np.array_equal(stream.process(block), block)
    assert stream.output_length(256) == 256
