"""Reads the CV inputs on a thread of its own; `latest()` never blocks.

A read of four CVs on the real ADC takes about 5 ms of waiting for conversions, which
must not happen on the daemon's asyncio loop. `CvSampler(panel.cvs)` reads round and
round (at most every `period_s`, 2 ms by default, so the instant virtual twin does not
spin a core) and keeps the newest snapshot. When the chip fails (loose
cable, stuck bus, conversion timeout) the last good volts are kept, the snapshot says
so (`ok` false, `error` the part's message), and reading is retried with a growing
pause (0.05 s doubling to 1 s): a flaky connection never stops the daemon, and the
values come back by themselves when the cable does.
"""
from __future__ import annotations

import threading
import time
from typing import Any, List, NamedTuple, Optional

from neurorave.hardware.errors import HardwareError

RETRY_FIRST_S = 0.05
RETRY_MAX_S = 1.0


class CvSnapshot(NamedTuple):
    volts: List[float]       # panel volts per CV (the last good reading when not ok)
    t_ns: int                # time.monotonic_ns() of that reading (0: none yet)
    ok: bool                 # False while the ADC is failing
    error: Optional[str]     # the failure, naming the part
    reads: int               # good readings so far
    errors: int              # failed readings so far


class CvSampler:
    def __init__(self, cvs: Any, period_s: float = 0.002) -> None:
        self.cvs = cvs
        self.period_s = period_s
        self._lock = threading.Lock()
        self._snapshot = CvSnapshot([0.0] * len(cvs.names), 0, True, None, 0, 0)
        self._stop = threading.Event()
        self._fresh = threading.Condition(self._lock)
        self._thread = threading.Thread(target=self._run, name="cv-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        retry = RETRY_FIRST_S
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                volts = self.cvs.read_volts()
            except HardwareError as exc:
                with self._lock:
                    s = self._snapshot
                    self._snapshot = s._replace(ok=False, error=str(exc), errors=s.errors + 1)
                    self._fresh.notify_all()
                self._stop.wait(retry)
                retry = min(retry * 2, RETRY_MAX_S)
                continue
            retry = RETRY_FIRST_S
            with self._lock:
                s = self._snapshot
                self._snapshot = CvSnapshot(volts, time.monotonic_ns(), True, None, s.reads + 1,
                                            s.errors)
                self._fresh.notify_all()
            rest = self.period_s - (time.monotonic() - started)
            if rest > 0:
                self._stop.wait(rest)

    def latest(self) -> CvSnapshot:
        with self._lock:
            return self._snapshot

    def wait_for(self, reads: int, timeout: float) -> CvSnapshot:
        """Block until `reads` good readings exist or `timeout` passes (tests, hwtest)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._snapshot.reads < reads:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._fresh.wait(left)
            return self._snapshot

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
