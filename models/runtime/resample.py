"""Streaming resampling from the model's rate to the audio device's rate.

The voice resamples one latent frame at a time, and every block must come out at
once: a sample held back inside the resampler is latency. soxr's stream resampler
(HQ) holds input back and releases it in bursts (64 samples in per call: nothing for
eight calls, then 1468 samples out; measured with python-soxr 1.1), which adds about
30 ms and a jittering block size to every gate. So for the rational ratios the voice
meets (16, 22.05, 24, 32, 44.1 kHz to 48 kHz...) resampling is a polyphase
windowed-sinc filter here: each call returns every output sample its input allows,
consecutive blocks join exactly as if the whole signal were resampled at once, and
the delay is fixed (`latency_samples`, half the filter). Ratios that would need an
enormous filter bank fall back to soxr's stream resampler.
"""
from math import gcd
from typing import Optional

import numpy as np

TAPS_PER_PHASE = 32      # filter length in input samples: ~ 80 dB stopband with Kaiser 8
KAISER_BETA = 8.0
PASSBAND = 0.92          # cutoff as a fraction of the lower Nyquist frequency
MAX_PHASES = 1024        # beyond this many phases (odd ratios), use soxr


def polyphase_filter(up: int, down: int, taps_per_phase: int = TAPS_PER_PHASE) -> np.ndarray:
    """Filter bank [up, taps_per_phase]: phase p holds taps p, p + up, p + 2 up, ..."""
    n = up * taps_per_phase
    cutoff = PASSBAND * 0.5 / max(up, down)   # cycles per sample at the upsampled rate
    t = np.arange(n) - (n - 1) / 2
    h = 2 * cutoff * np.sinc(2 * cutoff * t) * np.kaiser(n, KAISER_BETA) * up
    return h.reshape(taps_per_phase, up).T.astype(np.float32).copy()


class PolyphaseResampler:
    """Rational-ratio resampling, stateful across calls, nothing held back."""

    def __init__(self, in_rate: int, out_rate: int, taps_per_phase: int = TAPS_PER_PHASE):
        g = gcd(int(in_rate), int(out_rate))
        self.up, self.down = int(out_rate) // g, int(in_rate) // g
        if self.down > self.up:
            # Downsampling: the transition band must fit under the *output's* Nyquist.
            taps_per_phase *= 2 * -(-self.down // self.up)
        self.taps = taps_per_phase
        self.bank = polyphase_filter(self.up, self.down, self.taps)
        # Group delay of the linear-phase filter, in output samples.
        self.latency_samples = (self.up * self.taps - 1) / 2 / self.down
        self.reset()

    def reset(self) -> None:
        self._history = np.zeros(self.taps - 1, dtype=np.float32)
        self._consumed = 0   # input samples seen
        self._produced = 0   # output samples given

    def snapshot(self) -> tuple:
        return self._history.copy(), self._consumed, self._produced

    def restore(self, saved: tuple) -> None:
        history, self._consumed, self._produced = saved
        self._history = history.copy()

    def process(self, block: np.ndarray) -> np.ndarray:
        block = np.ascontiguousarray(block, dtype=np.float32).reshape(-1)
        buffer = np.concatenate([self._history, block])
        total = self._consumed + len(block)
        # Output n needs input floor(n * down / up); every n whose input has arrived.
        last = (total * self.up - 1) // self.down
        n = np.arange(self._produced, last + 1, dtype=np.int64)
        position = n * self.down
        newest = position // self.up - (self._consumed - (self.taps - 1))
        window = newest[:, None] - np.arange(self.taps)[None, :]
        out = np.einsum("nk,nk->n", buffer[window], self.bank[position % self.up])
        self._produced = int(last + 1)
        self._consumed = total
        self._history = buffer[len(buffer) - (self.taps - 1):].copy()
        return out.astype(np.float32, copy=False)


class StreamResampler:
    def __init__(self, in_rate: int, out_rate: int, quality: str = "HQ"):
        self.in_rate = int(in_rate)
        self.out_rate = int(out_rate)
        self.quality = quality
        g = gcd(self.in_rate, self.out_rate)
        self.method = ("passthrough" if self.in_rate == self.out_rate
                       else "polyphase" if self.out_rate // g <= MAX_PHASES else "soxr")
        self._poly: Optional[PolyphaseResampler] = None
        self._stream: Optional[object] = None
        self.reset()

    @property
    def passthrough(self) -> bool:
        return self.method == "passthrough"

    @property
    def latency_samples(self) -> float:
        """Fixed delay in output samples (soxr's varies and is not reported)."""
        return self._poly.latency_samples if self._poly is not None else 0.0

    def reset(self) -> None:
        """Forget the filter state (after a stop, before a new phrase)."""
        if self.method == "polyphase":
            if self._poly is None:
                self._poly = PolyphaseResampler(self.in_rate, self.out_rate)
            self._poly.reset()
        elif self.method == "soxr":
            import soxr

            self._stream = soxr.ResampleStream(self.in_rate, self.out_rate, 1,
                                               dtype="float32", quality=self.quality)

    def process(self, block: np.ndarray, last: bool = False) -> np.ndarray:
        """Resample one mono float32 block; the output length varies by a sample or so.
        `last` flushes what a filter still holds (the end of an offline render)."""
        block = np.ascontiguousarray(block, dtype=np.float32).reshape(-1)
        if self.method == "passthrough":
            return block.copy()  # callers keep blocks; the engine reuses its buffer
        if self._poly is not None:
            out = self._poly.process(block)
            if last:
                tail = int(np.ceil(self._poly.latency_samples * self.in_rate / self.out_rate))
                out = np.concatenate([out, self._poly.process(np.zeros(tail, np.float32))])
            return out
        return self._stream.resample_chunk(block, last=last)  # type: ignore[union-attr]

    def snapshot(self) -> Optional[tuple]:
        """The filter state, to process a block again; None where it cannot (soxr)."""
        if self.method == "passthrough":
            return ()
        return self._poly.snapshot() if self._poly is not None else None

    def restore(self, saved: tuple) -> None:
        if self._poly is not None:
            self._poly.restore(saved)

    def output_length(self, input_length: int) -> float:
        """Average output samples per input block (the ring's sizing needs it)."""
        return input_length * self.out_rate / self.in_rate
