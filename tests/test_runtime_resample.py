"""Streaming resampling is continuous across calls: blocks join without a click."""
import numpy as np
import pytest
import soxr
from neurorave.models.runtime.resample import StreamResampler

RATIOS = [(16000, 48000), (22050, 48000), (44100, 48000), (48000, 44100), (24000, 48000)]


@pytest.mark.parametrize("in_rate,out_rate", RATIOS)
def test_blocks_equal_whole_signal(in_rate, out_rate):
    """However the signal is cut into calls, the output is the same samples."""
    rng = np.random.default_rng(0)
    signal = rng.standard_normal(in_rate // 2).astype(np.float32) * 0.1
    whole = StreamResampler(in_rate, out_rate).process(signal)
    for size in (64, 1000, 1024):
        stream = StreamResampler(in_rate, out_rate)
        streamed = np.concatenate([stream.process(signal[i:i + size])
                                   for i in range(0, len(signal), size)])
        assert np.array_equal(streamed, whole)


@pytest.mark.parametrize("in_rate,out_rate", RATIOS)
def test_a_sine_comes_out_exact_after_the_fixed_delay(in_rate, out_rate):
    freq = 997.0
    t = np.arange(in_rate) / in_rate
    stream = StreamResampler(in_rate, out_rate)
    out = stream.process(np.sin(2 * np.pi * freq * t).astype(np.float32))
    n = np.arange(len(out))
    expected = np.sin(2 * np.pi * freq * (n - stream.latency_samples) / out_rate)
    assert np.max(np.abs(out - expected)[2000:-2000]) < 1e-4
    assert stream.latency_samples < 0.002 * out_rate   # under 2 ms


def test_every_call_returns_its_share_at_once():
    """No burst: a latent frame in gives its device samples out in the same call (soxr's
    stream resampler holds small blocks back and releases ~1500 samples every 8 calls)."""
    stream = StreamResampler(16000, 48000)
    lengths = [len(stream.process(np.ones(64, np.float32))) for _ in range(50)]
    assert lengths == [192] * 50
    stream = StreamResampler(44100, 48000)
    lengths = [len(stream.process(np.ones(441, np.float32))) for _ in range(50)]
    assert set(lengths) <= {479, 480, 481} and sum(lengths) == 50 * 480


def test_downsampling_rejects_what_would_alias():
    """48 -> 44.1 kHz: a 23 kHz tone is above the new Nyquist and must vanish (> 60 dB)."""
    t = np.arange(48000) / 48000
    out = StreamResampler(48000, 44100).process(np.sin(2 * np.pi * 23000 * t).astype(np.float32))
    assert np.sqrt(np.mean(out[1000:-1000] ** 2)) < 1e-3


def test_odd_ratios_fall_back_to_soxr_and_stay_continuous():
    stream = StreamResampler(47993, 48000)
    assert stream.method == "soxr"
    rng = np.random.default_rng(1)
    signal = rng.standard_normal(47993 // 4).astype(np.float32) * 0.1
    pieces = [stream.process(signal[i:i + 1024]) for i in range(0, len(signal), 1024)]
    pieces.append(stream.process(np.zeros(0, np.float32), last=True))
    streamed = np.concatenate(pieces)
    whole = soxr.resample(signal, 47993, 48000, quality="HQ").astype(np.float32)
    n = min(len(streamed), len(whole))
    assert abs(len(streamed) - len(whole)) <= 2
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
