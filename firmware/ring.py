"""Single-producer single-consumer audio ring: voice thread -> audio consumer.

Where it plugs in: the voice thread calls `write()` with each resampled block; the
audio consumer (`audio_out.AudioOutput`: a PortAudio callback or a writer thread) calls
`read_into()` with one device block. The read side never allocates, locks or waits:
when the ring holds fewer samples than asked it plays what there is, fills the rest
with silence and counts an underflow (unless the producer has ended the sound: `end`).

Why no lock for plain writes: each index has one writer (the producer owns
`_write_total`, the consumer owns `_read_total`), both only grow, and a Python int
assignment is atomic under the GIL. The producer publishes its index only after the
samples are in place, the consumer frees space only after copying out, so neither side
ever sees a half-written block.

A splice (`splice`: a gate's frame replacing what is queued) takes back samples the
consumer could be about to read, so it and each read hold one lock: a read waits at
most for the splice's copy (a few hundred samples, no allocation in the ring), and a
splice can start at the very next sample to be read. Without it a splice had to keep a
block or two clear of the read point (5 to 11 ms at 256 frames), and a gate was heard
that much later.
"""
import threading
from typing import Callable, Optional

import numpy as np


class AudioRing:
    """A preallocated float32 ring of `capacity` mono samples."""

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError("ring capacity must be at least one sample")
        self.capacity = int(capacity)
        self._buffer = np.zeros(self.capacity, dtype=np.float32)
        self._write_total = 0  # samples ever written (producer only)
        self._read_total = 0  # samples ever read (consumer only)
        self.underflows = 0  # reads that came up short (consumer only)
        self.samples_missing = 0  # silence samples filled in (consumer only)
        self._lock = threading.Lock()  # a read against a splice
        self._ended_at: Optional[int] = None  # where the producer said the sound ends

    # ---- shared view -------------------------------------------------------------
    def available(self) -> int:
        """Samples waiting to be read."""
        return self._write_total - self._read_total

    def free(self) -> int:
        """Room for the producer."""
        return self.capacity - self.available()

    @property
    def total_written(self) -> int:
        return self._write_total

    @property
    def total_read(self) -> int:
        return self._read_total

    # ---- producer ----------------------------------------------------------------
    def write(self, block: np.ndarray) -> int:
        """Copy as much of `block` as fits; return how many samples were taken.

        The producer paces itself on `free()`: it renders the next frame only when
        there is room, so a full ring never drops audio silently.
        """
        n = min(int(block.shape[0]), self.free())
        if n <= 0:
            return 0
        start = self._write_total % self.capacity
        first = min(n, self.capacity - start)
        self._buffer[start:start + first] = block[:first]
        if n > first:
            self._buffer[:n - first] = block[first:n]
        self._write_total += n  # publish only after the copy
        self._ended_at = None  # sound again: a short read is an underflow again
        return n

    def end(self) -> None:
        """Producer side: what is queued is the last of the sound (a voice that stopped,
        its fade-out written). Reads past it are silence by design, not underflows;
        a later write starts the sound again."""
        self._ended_at = self._write_total

    def splice(self, earliest: int,
               make: Callable[[int], Optional[np.ndarray]]) -> Optional[int]:
        """Producer side: replace everything queued from the next sample the consumer
        will read (but not before ring index `earliest`) with `make(index)`'s block;
        `make` gets that index and may return None to leave the ring as it is. Returns
        the index, or None when nothing was spliced. `make` runs under the lock the
        consumer's reads take: it must be quick (a crossfade, not a render)."""
        with self._lock:
            index = max(self._read_total, earliest)
            if index > self._write_total:
                return None
            block = make(index)
            if block is None:
                return None
            if len(block) > self.capacity - (index - self._read_total):
                raise ValueError("a splice longer than the ring's room")
            self._write_total = index
            self.write(block)
            return index

    def peek(self, index: int, out: np.ndarray) -> int:
        """Producer side: copy the queued samples from ring index `index` into `out`;
        returns how many there were."""
        n = max(0, min(len(out), self._write_total - index))
        start = index % self.capacity
        first = min(n, self.capacity - start)
        out[:first] = self._buffer[start:start + first]
        out[first:n] = self._buffer[:n - first]
        return n

    # ---- consumer (audio callback or writer) ---------------------------------------
    def read_into(self, out: np.ndarray, count: Optional[int] = None) -> int:
        """Fill `out` (1-D float32 view) from the ring; silence where it runs short.

        Returns the number of real samples copied. Allocation-free: only slice views of
        preallocated arrays are made. Waits only for a splice in progress.
        """
        with self._lock:
            return self._read_into(out, count)

    def _read_into(self, out: np.ndarray, count: Optional[int]) -> int:
        want = out.shape[0] if count is None else count
        n = min(want, self.available())
        if n > 0:
            start = self._read_total % self.capacity
            first = min(n, self.capacity - start)
            out[:first] = self._buffer[start:start + first]
            if n > first:
                out[first:n] = self._buffer[:n - first]
            self._read_total += n  # free the space only after the copy
        if n < want:
            out[n:want] = 0.0
            ended = self._ended_at
            if ended is None or self._read_total < ended:
                self.underflows += 1
                self.samples_missing += want - n
        return n

    def drop_all(self) -> None:
        """Consumer side: discard what is queued (used when a stream restarts)."""
        self._read_total = self._write_total
