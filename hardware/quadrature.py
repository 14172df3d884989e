"""Quadrature decoding for a detented rotary encoder (pure logic, no I/O).

The two lines A and B form a 2-bit Gray code: clockwise 00 -> 01 -> 11 -> 10 -> 00
(state = A << 1 | B). Each valid transition (one line changes) adds +1 or -1 to an
accumulator; a transition where both lines change at once is invalid (a missed or
garbled sample) and is ignored. A step is only reported when the lines come back to
a detent's rest state, rounded to whole detents, and the accumulator restarts there:
contact bounce (a line flickering back and forth) cancels itself, a half-turn that
comes back reports nothing, and one detent gives one step.

`steps_per_detent` is 4 for most EC11-type encoders (rest at 11 with pull-ups), 2 for
half-step ones (rest at 00 and 11), 1 to report every transition.
"""
from __future__ import annotations

from typing import Optional

# _DELTA[prev << 2 | new]: +1 clockwise, -1 anticlockwise, 0 none or invalid.
_DELTA = (0, +1, -1, 0,
          -1, 0, 0, +1,
          +1, 0, 0, -1,
          0, -1, +1, 0)
_INVALID = {0b0011, 0b0110, 0b1001, 0b1100}


def state_of(a: bool, b: bool) -> int:
    return (int(a) << 1) | int(b)


class QuadratureDecoder:
    def __init__(self, steps_per_detent: int = 4, state: int = 0b11,
                 rest_states: Optional[set] = None, reverse: bool = False) -> None:
        if steps_per_detent not in (1, 2, 4):
            raise ValueError("steps_per_detent must be 1, 2 or 4")
        self.steps_per_detent = steps_per_detent
        if rest_states is None:
            rest_states = {state} if steps_per_detent == 4 else (
                {0b00, 0b11} if steps_per_detent == 2 else {0, 1, 2, 3})
        self.rest_states = rest_states
        self.state = state
        self.reverse = reverse
        self.invalid = 0
        self._count = 0

    def update(self, state: int) -> int:
        """Feed the lines' new state; returns whole detents turned (usually 0 or +-1)."""
        key = (self.state << 2) | state
        if key in _INVALID:
            self.invalid += 1
        self._count += _DELTA[key]
        self.state = state
        if state not in self.rest_states:
            return 0
        count, self._count = self._count, 0
        # Round to whole detents, halves towards zero: a missed sample costs no step.
        detents = int(abs(count) / self.steps_per_detent + 0.49) * (1 if count > 0 else -1)
        return -detents if self.reverse else detents
