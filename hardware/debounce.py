"""Debouncing a digital line: lockout with re-check (pure logic, no I/O).

The first change of level passes at once (no added latency: a gate's timing is the
music), then the line is ignored for `window_ns`; when the window ends, the line's
current level is checked and a difference counts as a new edge stamped at the end of
the window (or at the change, if later). This is hysteresis in time: contact bounce
and ringing shorter than the window never produce extra edges, and a level held
longer than the window is never lost. Voltage hysteresis is the input circuit's job
(transistor or Schmitt stage, README).

Drivers call `update(level, t_ns)` on every sample or interrupt and `tick(t_ns)`
when nothing happens (so a change hidden inside the window still comes out).
"""
from __future__ import annotations

from typing import List, Tuple

Edge = Tuple[bool, int]   # (new level, time in ns)


class Debouncer:
    def __init__(self, window_ns: int, level: bool = False) -> None:
        self.window_ns = int(window_ns)
        self.level = level
        self._raw = level
        self._raw_t = -(1 << 62)
        self._lock_until = -(1 << 62)

    def _accept(self, level: bool, t_ns: int) -> Edge:
        self.level = level
        self._lock_until = t_ns + self.window_ns
        return (level, t_ns)

    def tick(self, t_ns: int) -> List[Edge]:
        if self._raw != self.level and t_ns > self._lock_until:
            return [self._accept(self._raw, max(self._raw_t, self._lock_until))]
        return []

    def update(self, level: bool, t_ns: int) -> List[Edge]:
        edges = self.tick(t_ns)
        if level != self._raw:
            self._raw, self._raw_t = level, t_ns
        if t_ns >= self._lock_until and level != self.level:
            edges.append(self._accept(level, t_ns))
        return edges
