"""The encoder's RGB LED: three GPIO lines, seven colours and off, blink patterns.

Colours are names (`COLOURS`) or (r, g, b) fractions 0..1; on/off lines light a
channel when its fraction is at least one half, PWM lines (where the board has them)
set the duty cycle (on the Jetson Nano only pins 32 and 33 have PWM; the third line
stays on/off). `LedState` is the pure part shared with the virtual twin: the
steady colour, the blink pattern, and which colour shows at a given time.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Dict, Optional, Tuple

from neurorave.hardware.board import PWM_PINS, LedConfig
from neurorave.hardware.errors import HardwareError
from neurorave.hardware.interfaces import Colour

RGB = Tuple[float, float, float]

COLOURS: Dict[str, RGB] = {
    "off": (0.0, 0.0, 0.0),
    "red": (1.0, 0.0, 0.0),
    "green": (0.0, 1.0, 0.0),
    "blue": (0.0, 0.0, 1.0),
    "yellow": (1.0, 1.0, 0.0),
    "cyan": (0.0, 1.0, 1.0),
    "magenta": (1.0, 0.0, 1.0),
    "white": (1.0, 1.0, 1.0),
}


def to_rgb(colour: Colour) -> RGB:
    if isinstance(colour, str):
        try:
            return COLOURS[colour]
        except KeyError:
            raise ValueError(f"unknown colour {colour!r}; one of {', '.join(COLOURS)}") from None
    r, g, b = (float(c) for c in colour)
    if not all(0.0 <= c <= 1.0 for c in (r, g, b)):
        raise ValueError(f"colour fractions must be 0..1, not {colour!r}")
    return (r, g, b)


class LedState:
    """What the LED should show at any moment (no I/O)."""

    def __init__(self) -> None:
        self.steady: RGB = COLOURS["off"]
        self.blink_colour: Optional[RGB] = None
        self.on_s = 0.0
        self.off_s = 0.0
        self.count: Optional[int] = None
        self.started = 0.0

    def set_colour(self, colour: Colour) -> None:
        self.steady = to_rgb(colour)
        self.blink_colour = None

    def blink(self, colour: Colour, on_s: float, off_s: float, count: Optional[int],
              now: float) -> None:
        if on_s <= 0 or off_s < 0:
            raise ValueError("blink needs on_s > 0 and off_s >= 0")
        if count is not None and count < 1:
            raise ValueError("blink count must be at least 1")
        self.blink_colour = to_rgb(colour)
        self.on_s, self.off_s, self.count, self.started = on_s, off_s, count, now

    def colour_at(self, now: float) -> RGB:
        if self.blink_colour is None:
            return self.steady
        elapsed = max(0.0, now - self.started)
        period = self.on_s + self.off_s
        cycle, phase = divmod(elapsed, period)
        if self.count is not None and cycle >= self.count:
            return self.steady
        return self.blink_colour if phase < self.on_s else COLOURS["off"]

    def next_change(self, now: float) -> Optional[float]:
        """Seconds until the shown colour may change (None: steady)."""
        if self.blink_colour is None:
            return None
        elapsed = max(0.0, now - self.started)
        period = self.on_s + self.off_s
        cycle, phase = divmod(elapsed, period)
        if self.count is not None and cycle >= self.count:
            return None
        return (self.on_s - phase) if phase < self.on_s else (period - phase)


class GpioLed:
    """The RgbLed interface on three GPIO outputs; a thread runs blink patterns."""

    def __init__(self, gpio: Any, config: LedConfig,
                 clock: Any = time.monotonic) -> None:
        self.gpio = gpio
        self.config = config
        self.pins = (config.red, config.green, config.blue)
        self.state = LedState()
        self._clock = clock
        self._pwms: Dict[int, Any] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        off = gpio.HIGH if config.active_low else gpio.LOW
        try:
            for pin in self.pins:
                gpio.setup(pin, gpio.OUT, initial=off)
            if config.pwm:
                # PWM on the lines that have it, on/off on the others.
                for pin in self.pins:
                    if pin in PWM_PINS:
                        self._pwms[pin] = gpio.PWM(pin, config.pwm_hz)
                        self._pwms[pin].start(100.0 if config.active_low else 0.0)
        except (RuntimeError, ValueError) as exc:
            raise HardwareError("LED", f"GPIO refused: {exc}") from None
        self.shown: RGB = COLOURS["off"]
        self._thread = threading.Thread(target=self._run, name="led", daemon=True)
        self._thread.start()

    def _apply(self, rgb: RGB) -> None:
        if rgb == self.shown:
            return
        self.shown = rgb
        switched, levels = [], []
        for pin, value in zip(self.pins, rgb):
            if pin in self._pwms:
                duty = 100.0 * value
                self._pwms[pin].ChangeDutyCycle(100.0 - duty if self.config.active_low
                                                else duty)
            else:
                switched.append(pin)
                on = (value >= 0.5) != self.config.active_low
                levels.append(self.gpio.HIGH if on else self.gpio.LOW)
        if switched:
            self.gpio.output(switched, levels)

    def _run(self) -> None:
        while not self._closed:
            self._wake.clear()   # before reading the state: a later set() is never lost
            with self._lock:
                now = self._clock()
                self._apply(self.state.colour_at(now))
                wait = self.state.next_change(now)
            self._wake.wait(None if wait is None else max(wait, 0.001))

    def set_colour(self, colour: Colour) -> None:
        with self._lock:
            self.state.set_colour(colour)
        self._wake.set()

    def blink(self, colour: Colour, on_s: float, off_s: float,
              count: Optional[int] = None) -> None:
        with self._lock:
            self.state.blink(colour, on_s, off_s, count, self._clock())
        self._wake.set()

    def close(self) -> None:
        with self._lock:
            self.state.set_colour("off")
        self._closed = True
        self._wake.set()
        self._thread.join(timeout=1.0)
        self._apply(COLOURS["off"])
        for pwm in self._pwms.values():
            pwm.stop()
        self.gpio.cleanup(list(self.pins))
