"""A small periodic thread for drivers (debounce windows, long-press timers, polling)."""
from __future__ import annotations

import threading
import time
from typing import Callable, Optional


class Ticker:
    """Calls `action(time.monotonic_ns())` every `period_s` until `stop()`.

    An exception in `action` (a GPIO read that failed) never kills the thread or the
    process: it is kept in `error` and counted in `errors`, and the ticker carries on
    with a growing pause (up to `MAX_BACKOFF_S`), back to its period once a call
    succeeds, so a line that comes back is read again by itself.
    """

    MAX_BACKOFF_S = 1.0

    def __init__(self, period_s: float, action: Callable[[int], None], name: str) -> None:
        self.period_s = period_s
        self.action = action
        self.error: Optional[BaseException] = None
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        wait = self.period_s
        while not self._stop.wait(wait):
            try:
                self.action(time.monotonic_ns())
            except Exception as exc:  # noqa: BLE001 - reported through `error`
                self.error = exc
                self.errors += 1
                wait = min(max(wait * 2, 0.01), self.MAX_BACKOFF_S)
                continue
            wait = self.period_s

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=1.0)
