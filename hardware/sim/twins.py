"""Virtual twins of the panel parts: same interfaces as the real drivers, no wires.

They are played by the window (mouse and keyboard), by a patch file (PatchPlayer) or
by a test: `set_volts`, `set_gate`, `turn`, `set_switch` / `press`. Gate edges,
encoder steps and button gestures go into the same EventQueue as the real drivers'
ones, with monotonic timestamps; a held switch goes through the same
`ButtonGestures` logic as the real switch, so long and double presses feel the same.
"""
from __future__ import annotations

import threading
import time
from typing import List, Optional, Sequence

from neurorave.hardware.board import CvConfig, EncoderConfig
from neurorave.hardware.button import ButtonGestures
from neurorave.hardware.interfaces import (
    BUTTON_KINDS,
    ButtonPress,
    Colour,
    EncoderStep,
    EventQueue,
    GateEdge,
)
from neurorave.hardware.led import RGB, LedState


def _now(t_ns: Optional[int]) -> int:
    return time.monotonic_ns() if t_ns is None else t_ns


class VirtualCvInputs:
    def __init__(self, cvs: Sequence[CvConfig]) -> None:
        self.cvs = list(cvs)
        self.names = [cv.name for cv in self.cvs]
        self._volts = [min(max(0.0, cv.min_volts), cv.max_volts) for cv in self.cvs]
        self._lock = threading.Lock()

    def set_volts(self, index: int, volts: float) -> float:
        """Turn knob `index` (0-based) to `volts`, kept inside the panel range."""
        cv = self.cvs[index]
        clamped = min(max(float(volts), cv.min_volts), cv.max_volts)
        with self._lock:
            self._volts[index] = clamped
        return clamped

    def read_volts(self) -> List[float]:
        with self._lock:
            return list(self._volts)

    def close(self) -> None:
        pass


class VirtualGates:
    def __init__(self, names: Sequence[str], events: EventQueue) -> None:
        self.names = list(names)
        self.events = events
        self._levels = [False] * len(self.names)
        self._lock = threading.Lock()

    def set_gate(self, index: int, high: bool, t_ns: Optional[int] = None) -> None:
        with self._lock:
            changed = self._levels[index] != high
            self._levels[index] = high
        if changed:
            self.events.post(GateEdge(index, high, _now(t_ns)))

    def levels(self) -> List[bool]:
        with self._lock:
            return list(self._levels)

    def close(self) -> None:
        pass


class VirtualEncoder:
    def __init__(self, config: EncoderConfig, events: EventQueue) -> None:
        self.events = events
        ms = 1_000_000
        self._gestures = ButtonGestures(int(config.long_press_ms * ms),
                                        int(config.double_press_ms * ms), 0)
        self._lock = threading.Lock()
        self.position = 0          # detents turned in all, for the panel view

    def turn(self, steps: int, t_ns: Optional[int] = None) -> None:
        if steps:
            with self._lock:
                self.position += steps
            self.events.post(EncoderStep(int(steps), _now(t_ns)))

    def set_switch(self, pressed: bool, t_ns: Optional[int] = None) -> None:
        """Hold or release the push button (the window's key or mouse)."""
        with self._lock:
            gestures = self._gestures.update(pressed, _now(t_ns))
        for kind, t in gestures:
            self.events.post(ButtonPress(kind, t))

    def tick(self, t_ns: Optional[int] = None) -> None:
        """Let the long/short timers run out (the window calls it every frame)."""
        with self._lock:
            gestures = self._gestures.tick(_now(t_ns))
        for kind, t in gestures:
            self.events.post(ButtonPress(kind, t))

    def press(self, kind: str, t_ns: Optional[int] = None) -> None:
        """A whole gesture at once (patch files)."""
        if kind not in BUTTON_KINDS:
            raise ValueError(f"press kind must be one of {BUTTON_KINDS}")
        self.events.post(ButtonPress(kind, _now(t_ns)))

    def is_pressed(self) -> bool:
        with self._lock:
            return self._gestures.pressed

    def close(self) -> None:
        pass


class VirtualLed:
    def __init__(self) -> None:
        self.state = LedState()
        self._lock = threading.Lock()

    def set_colour(self, colour: Colour) -> None:
        with self._lock:
            self.state.set_colour(colour)

    def blink(self, colour: Colour, on_s: float, off_s: float,
              count: Optional[int] = None) -> None:
        with self._lock:
            self.state.blink(colour, on_s, off_s, count, time.monotonic())

    def shown(self, now: Optional[float] = None) -> RGB:
        with self._lock:
            return self.state.colour_at(time.monotonic() if now is None else now)

    def close(self) -> None:
        self.set_colour("off")
