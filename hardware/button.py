"""Push-button gestures and encoder acceleration (pure logic, no I/O).

`ButtonGestures` turns a debounced pressed/released line into "short", "long" and
"double" presses:
- long: posted as soon as the button has been held `long_ns` (the player feels it
  without letting go); its release reports nothing more.
- double: a second press starting within `double_ns` of the first release (held
  until long, it is a long press, and the first one a short).
- short: a press released before `long_ns`, posted once `double_ns` has passed
  without a second press (at release when double presses are off, `double_ns = 0`).
Every gesture is stamped with the time its first press began.

`Acceleration` multiplies encoder steps that follow each other quickly, so a fast
spin crosses a long menu or parameter range.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

from neurorave.hardware.debounce import Debouncer

Gesture = Tuple[str, int]   # (kind, t_ns of the first press)


class ButtonGestures:
    def __init__(self, long_ns: int, double_ns: int, debounce_ns: int = 0) -> None:
        self.long_ns = int(long_ns)
        self.double_ns = int(double_ns)
        self._debouncer = Debouncer(debounce_ns, False)
        self.pressed = False
        self._press_t = 0
        self._long_sent = False
        self._second = False
        self._first_press_t = 0
        self._release_t: Optional[int] = None   # a short press waiting for a second

    def update(self, pressed: bool, t_ns: int) -> List[Gesture]:
        out = self._timers(t_ns)
        for level, t in self._debouncer.update(pressed, t_ns):
            out += self._timers(t)
            out += self._edge(level, t)
        return out

    def tick(self, t_ns: int) -> List[Gesture]:
        out: List[Gesture] = []
        for level, t in self._debouncer.tick(t_ns):
            out += self._timers(t)
            out += self._edge(level, t)
        return out + self._timers(t_ns)

    def _edge(self, pressed: bool, t: int) -> List[Gesture]:
        self.pressed = pressed
        if pressed:
            self._press_t = t
            self._long_sent = False
            self._second = self._release_t is not None
            if not self._second:
                self._first_press_t = t
            self._release_t = None
            return []
        if self._long_sent:
            return []
        if self._second:
            self._second = False
            return [("double", self._first_press_t)]
        if self.double_ns <= 0:
            return [("short", self._press_t)]
        self._release_t = t
        return []

    def _timers(self, t: int) -> List[Gesture]:
        if self.pressed and not self._long_sent and t - self._press_t >= self.long_ns:
            self._long_sent = True
            # A second press held long is no double: the first still counts, as a short.
            first = [("short", self._first_press_t)] if self._second else []
            self._second = False
            return first + [("long", self._press_t)]
        if self._release_t is not None and t - self._release_t >= self.double_ns:
            self._release_t = None
            return [("short", self._first_press_t)]
        return []


class Acceleration:
    """Steps closer than `slow_ns` apart count more, up to `max_factor` at `fast_ns`."""

    def __init__(self, slow_ns: int = 60_000_000, fast_ns: int = 10_000_000,
                 max_factor: int = 8) -> None:
        self.slow_ns = slow_ns
        self.fast_ns = fast_ns
        self.max_factor = max_factor
        self._last_t: Optional[int] = None

    def apply(self, steps: int, t_ns: int) -> int:
        last, self._last_t = self._last_t, t_ns
        if last is None or steps == 0:
            return steps
        gap = t_ns - last
        if gap >= self.slow_ns:
            return steps
        span = self.slow_ns - self.fast_ns
        closeness = min(1.0, (self.slow_ns - gap) / span) if span > 0 else 1.0
        return steps * (1 + int(round(closeness * (self.max_factor - 1))))
