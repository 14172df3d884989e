"""The stats file (DESIGN.md "Stats"): JSON every second and at exit.

Where it plugs in: the voice thread calls `Stats.inference.add(ms)` and
`Stats.block_rendered()` per frame, and `Stats.latency.add(ms)` when it measures a
gate edge reaching the output; the scheduler calls `Stats.error(text)` for faults it
handles, `StatsWriter.tick()` on every loop turn (it writes at most once a second) and
`StatsWriter.close()` at exit. Underflow counts come from the audio output
(`AudioOutput.underflows`, passed to `tick()` as a callable). Benchmarks and tests read
the file with `read_stats()`.

Fields: time, uptime_s, underflows, blocks_rendered, inference_ms {count, p50, p99,
max}, latency_ms {count, p50, p99, max, last}, rss_mb, engine, provider, errors
{count, last: [..]}, and any extra fields the daemon adds (`Stats.extra`).
"""
import contextlib
import json
import os
import resource
import sys
import tempfile
import threading
import time
from typing import Any, Callable, Dict, List, Optional

import numpy as np
from neurorave.common.errors import UserError


class PercentileWindow:
    """The last `size` samples in a preallocated array; adding one never allocates.

    The maximum covers every sample ever added, not only the window (a worst case
    must not scroll away).
    """

    def __init__(self, size: int = 4096):
        if size < 1:
            raise ValueError("window size must be at least 1")
        self._values = np.zeros(size, dtype=np.float64)
        self._size = size
        self._next = 0
        self.count = 0
        self.max = float("-inf")
        self.last = float("nan")

    def add(self, value: float) -> None:
        self._values[self._next] = value
        self._next = (self._next + 1) % self._size
        self.count += 1
        self.last = value
        if value > self.max:
            self.max = value

    def percentile(self, q: float) -> Optional[float]:
        n = min(self.count, self._size)
        if n == 0:
            return None
        return float(np.percentile(self._values[:n], q))

    def summary(self, ndigits: int = 3) -> Dict[str, Any]:
        if self.count == 0:
            return {"count": 0, "p50": None, "p99": None, "max": None, "last": None}
        p50, p99 = self.percentile(50), self.percentile(99)
        return {"count": self.count,
                "p50": round(p50, ndigits) if p50 is not None else None,
                "p99": round(p99, ndigits) if p99 is not None else None,
                "max": round(self.max, ndigits), "last": round(self.last, ndigits)}


def rss_mb() -> float:
    """Resident memory now (Linux /proc), else the peak that getrusage reports."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2 ** 20
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2 ** 20 if sys.platform == "darwin" else peak / 1024


class Stats:
    """Counters shared by the daemon's threads (each field has one writer)."""

    MAX_ERRORS_KEPT = 20

    def __init__(self, window: int = 4096):
        self.started = time.monotonic()
        self.inference = PercentileWindow(window)  # ms per latent frame (voice thread)
        self.latency = PercentileWindow(256)  # control-to-sound ms (voice thread)
        self.blocks_rendered = 0
        self.engine = ""
        self.provider = ""
        self.errors_seen = 0
        self._errors: List[str] = []
        self._lock = threading.Lock()  # errors come from several threads; never the callback
        self.extra: Dict[str, Any] = {}

    def block_rendered(self) -> None:
        self.blocks_rendered += 1

    def error(self, text: str) -> None:
        with self._lock:
            self.errors_seen += 1
            self._errors.append(text)
            del self._errors[:-self.MAX_ERRORS_KEPT]

    def as_dict(self, underflows: int = 0) -> Dict[str, Any]:
        with self._lock:
            errors = list(self._errors)
        doc = {
            "time": time.time(),
            "uptime_s": round(time.monotonic() - self.started, 3),
            "underflows": int(underflows),
            "blocks_rendered": self.blocks_rendered,
            "inference_ms": self.inference.summary(),
            "latency_ms": self.latency.summary(),
            "rss_mb": round(rss_mb(), 1),
            "engine": self.engine,
            "provider": self.provider,
            "errors": {"count": self.errors_seen, "last": errors},
        }
        doc.update(self.extra)
        return doc


def write_json_atomically(path: str, doc: Dict[str, Any]) -> None:
    """Readers see the old file or the new one, never half of one.

    No fsync: the stats are rewritten every second for tests and benchmarks, and
    syncing each one would only wear the module's SD card.
    """
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def check_writable(path: str) -> None:
    """At start, one clear error if the stats file cannot be written where asked: once
    playing, a failed write is only counted (the stats never stop the instrument)."""
    if os.path.isdir(path):
        raise UserError(f"{path}: is a folder; give a file name for the stats")
    folder = os.path.dirname(os.path.abspath(path))
    try:  # what write_json_atomically does: a temporary file beside the target
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                                   dir=folder)
    except OSError as exc:
        raise UserError(f"{path}: cannot write the stats file there "
                        f"({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(tmp)


class StatsWriter:
    """Writes `Stats` to a file at most every `period_s`, and once more at close."""

    def __init__(self, path: str, stats: Stats, underflows: Callable[[], int] = lambda: 0,
                 period_s: float = 1.0, clock: Callable[[], float] = time.monotonic):
        self.path = path
        self.stats = stats
        self._underflows = underflows
        self.period_s = period_s
        self._clock = clock
        self._last_write: Optional[float] = None
        self.writes = 0
        self.failures = 0

    def tick(self) -> bool:
        """Write if a period has passed since the last write; True when it wrote."""
        now = self._clock()
        if self._last_write is not None and now - self._last_write < self.period_s:
            return False
        self._last_write = now
        return self.write_now()

    def write_now(self) -> bool:
        try:
            write_json_atomically(self.path, self.stats.as_dict(self._underflows()))
        except OSError as exc:
            # A stats file must never stop the instrument; count it and say it once.
            self.failures += 1
            if self.failures == 1:
                self.stats.error(f"stats file {self.path}: {exc.strerror or exc}")
            return False
        self.writes += 1
        return True

    def close(self) -> bool:
        return self.write_now()


def read_stats(path: str) -> Dict[str, Any]:
    with open(path) as f:
        return json.load(f)
