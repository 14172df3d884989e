"""The push encoder on three GPIO lines: quadrature A/B and the switch.

A and B are read on every edge callback of either line, decoded by
`QuadratureDecoder` (bounce and invalid transitions rejected, one detent one step)
and posted as `EncoderStep(steps, t_ns)`: exactly the detents turned. Acceleration is
the menu's to apply (to values, not to a cursor), from the steps' times. The switch is read
on its edges and every 5 ms (for the long-press timer) and turned into
`ButtonPress(kind, t_ns)` by `ButtonGestures` ("short", "long", "double").
"""
from __future__ import annotations

import contextlib
import threading
import time
from typing import Any, List

from neurorave.hardware.board import EncoderConfig
from neurorave.hardware.button import ButtonGestures
from neurorave.hardware.errors import HardwareError
from neurorave.hardware.interfaces import ButtonPress, EncoderStep, EventQueue
from neurorave.hardware.quadrature import QuadratureDecoder, state_of
from neurorave.hardware.ticker import Ticker

SWITCH_PERIOD_S = 0.005


class GpioEncoder:
    def __init__(self, gpio: Any, config: EncoderConfig, events: EventQueue) -> None:
        self.gpio = gpio
        self.config = config
        self.events = events
        self._lock = threading.Lock()
        ms = 1_000_000
        self._buttons = ButtonGestures(int(config.long_press_ms * ms),
                                       int(config.double_press_ms * ms),
                                       int(config.debounce_ms * ms))
        pins = (config.pin_a, config.pin_b, config.pin_switch)
        taken: List[int] = []
        watched: List[int] = []
        try:
            for pin in pins:
                gpio.setup(pin, gpio.IN)
                taken.append(pin)
            self._decoder = QuadratureDecoder(config.steps_per_detent, self._state(),
                                              reverse=config.reverse)
            for pin, callback in ((config.pin_a, self._on_turn), (config.pin_b, self._on_turn),
                                  (config.pin_switch, self._on_switch)):
                gpio.add_event_detect(pin, gpio.BOTH, callback=callback)
                watched.append(pin)
        except (RuntimeError, ValueError) as exc:
            # Let go of what was taken, so that a retry finds it free; already failing,
            # so a second error here must not hide the first.
            with contextlib.suppress(Exception):
                for pin in watched:
                    gpio.remove_event_detect(pin)
                # The line whose watch failed is watched by someone else: theirs to keep.
                failed = pins[len(watched)] if len(taken) == len(pins) else None
                mine = [pin for pin in taken if pin != failed]
                if mine:
                    gpio.cleanup(mine)
            raise HardwareError("encoder", f"GPIO refused: {exc}") from None
        self._ticker = Ticker(SWITCH_PERIOD_S, self._tick, "encoder")

    def _state(self) -> int:
        return state_of(bool(self.gpio.input(self.config.pin_a)),
                        bool(self.gpio.input(self.config.pin_b)))

    def _on_turn(self, channel: int) -> None:
        t_ns = time.monotonic_ns()
        with self._lock:
            steps = self._decoder.update(self._state())
        if steps:
            self.events.post(EncoderStep(steps, t_ns))

    def _switch_pressed(self) -> bool:
        return bool(self.gpio.input(self.config.pin_switch)) != self.config.switch_active_low

    def _on_switch(self, channel: int) -> None:
        t_ns = time.monotonic_ns()
        with self._lock:
            gestures = self._buttons.update(self._switch_pressed(), t_ns)
        for kind, t in gestures:
            self.events.post(ButtonPress(kind, t))

    def _tick(self, t_ns: int) -> None:
        with self._lock:
            gestures = self._buttons.update(self._switch_pressed(), t_ns)
        for kind, t in gestures:
            self.events.post(ButtonPress(kind, t))

    def is_pressed(self) -> bool:
        with self._lock:
            return self._buttons.pressed

    @property
    def invalid_transitions(self) -> int:
        return self._decoder.invalid

    def close(self) -> None:
        self._ticker.stop()
        pins = [self.config.pin_a, self.config.pin_b, self.config.pin_switch]
        for pin in pins:
            self.gpio.remove_event_detect(pin)
        self.gpio.cleanup(pins)
