"""Streaming resampling from the model's rate to the audio device's rate.

soxr's stream resampler keeps its filter state between calls, so consecutive blocks
join without a click: the concatenated output equals resampling the whole signal at
once (up to the filter's start-up delay, which `latency_samples` reports). Equal
rates pass the audio through untouched.
"""
from typing import Optional

import numpy as np


class StreamResampler:
    def __init__(self, in_rate: int, out_rate: int, quality: str = "HQ"):
        self.in_rate = int(in_rate)
        self.out_rate = int(out_rate)
        self.quality = quality
        self._stream: Optional[object] = None
        self.reset()

    @property
    def passthrough(self) -> bool:
        return self.in_rate == self.out_rate

    def reset(self) -> None:
        """Forget the filter state (after a stop, before a new phrase)."""
        if self.passthrough:
            self._stream = None
            return
        import soxr

        self._stream = soxr.ResampleStream(self.in_rate, self.out_rate, 1,
                                           dtype="float32", quality=self.quality)

    def process(self, block: np.ndarray, last: bool = False) -> np.ndarray:
        """Resample one mono float32 block; the output length varies by a sample or so."""
        block = np.ascontiguousarray(block, dtype=np.float32).reshape(-1)
        if self._stream is None:
            return block
        return self._stream.resample_chunk(block, last=last)  # type: ignore[attr-defined]

    def output_length(self, input_length: int) -> float:
        """Average output samples per input block (the ring's sizing needs it)."""
        return input_length * self.out_rate / self.in_rate
