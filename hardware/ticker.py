"""A small periodic thread for drivers (debounce windows, long-press timers, polling)."""
from __future__ import annotations

import threading
import time
from typing import Callable, Optional


class Ticker:
    """Calls `action(time.monotonic_ns())` every `period_s` until `stop()`.

    An exception in `action` is kept in `error` and stops the ticker, rather than
    killing the process from a driver thread; the owner reports it.
    """

    def __init__(self, period_s: float, action: Callable[[int], None], name: str) -> None:
        self.period_s = period_s
        self.action = action
        self.error: Optional[BaseException] = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            try:
                self.action(time.monotonic_ns())
            except Exception as exc:  # noqa: BLE001 - reported through `error`
                self.error = exc
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=1.0)
