"""A model of the Jetson.GPIO module for machines without the Jetson's GPIO lines.

It has Jetson.GPIO's API (RPi.GPIO-like) and its rules: `setmode(BOARD)` before
anything; only the 40-pin header's GPIO pins exist; `input` on a pin not set up and
`output` on an input raise; pull-up/down settings are ignored (Jetson.GPIO warns: the
panel uses external resistors); `add_event_detect` callbacks run on one separate thread,
in order, as Jetson.GPIO does, and receive the channel number.

The outside world drives inputs with `drive(pin, level)`; outputs are read back with
`level(pin)`; `PWM` objects record their duty cycle. `wait_idle()` lets a test wait
until every queued callback has run.
"""
from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple

from neurorave.hardware.board import HEADER_GPIO_PINS, PWM_PINS

BOARD = 10
BCM = 11
IN = 1
OUT = 0
HIGH = 1
LOW = 0
RISING = 31
FALLING = 32
BOTH = 33
PUD_OFF = 20
PUD_DOWN = 21
PUD_UP = 22


class FakeGPIO:
    BOARD, BCM, IN, OUT, HIGH, LOW = BOARD, BCM, IN, OUT, HIGH, LOW
    RISING, FALLING, BOTH, PUD_OFF, PUD_DOWN, PUD_UP = RISING, FALLING, BOTH, PUD_OFF, \
        PUD_DOWN, PUD_UP

    def __init__(self, pins: Tuple[int, ...] = HEADER_GPIO_PINS) -> None:
        self.valid_pins = set(pins)
        self.mode: Optional[int] = None
        self.directions: Dict[int, int] = {}
        self.levels: Dict[int, int] = {p: HIGH for p in pins}   # external pull-ups
        self.callbacks: Dict[int, Tuple[int, Callable[[int], Any]]] = {}
        self.pwms: Dict[int, FakePWM] = {}
        self.warnings: List[str] = []
        self.history: List[Tuple[int, int]] = []                 # (pin, level) outputs
        self._queue: queue.Queue = queue.Queue()   # (callback, pin) for the event thread
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self.PWM = self._make_pwm

    # --- the Jetson.GPIO API -----------------------------------------------------------
    def setmode(self, mode: int) -> None:
        if mode not in (BOARD, BCM):
            raise ValueError("An invalid mode was passed to setmode()")
        self.mode = mode

    def getmode(self) -> Optional[int]:
        return self.mode

    def setwarnings(self, flag: bool) -> None:
        pass

    def _check(self, pin: int) -> None:
        if self.mode is None:
            raise RuntimeError("Please set pin numbering mode using GPIO.setmode(GPIO.BOARD)")
        if pin not in self.valid_pins:
            raise ValueError(f"Channel {pin} is invalid")

    def setup(self, pin: Any, direction: int, pull_up_down: int = PUD_OFF,
              initial: Optional[int] = None) -> None:
        for p in (pin if isinstance(pin, (list, tuple)) else [pin]):
            self._check(p)
            if pull_up_down != PUD_OFF:
                self.warnings.append(f"pull_up_down ignored on pin {p}")
            self.directions[p] = direction
            if direction == OUT:
                self._set(p, initial if initial is not None else LOW)

    def input(self, pin: int) -> int:
        self._check(pin)
        if pin not in self.directions:
            raise RuntimeError(f"You must setup() the GPIO channel {pin} first")
        with self._lock:
            return self.levels[pin]

    def output(self, pin: Any, value: Any) -> None:
        pins = pin if isinstance(pin, (list, tuple)) else [pin]
        values = value if isinstance(value, (list, tuple)) else [value] * len(pins)
        for p, v in zip(pins, values):
            self._check(p)
            if self.directions.get(p) != OUT:
                raise RuntimeError(f"The GPIO channel {p} has not been set up as an OUTPUT")
            self._set(p, HIGH if v else LOW)

    def add_event_detect(self, pin: int, edge: int, callback: Optional[Callable] = None,
                         bouncetime: Optional[int] = None) -> None:
        self._check(pin)
        if self.directions.get(pin) != IN:
            raise RuntimeError("You must setup() the GPIO channel as an input first")
        if pin in self.callbacks:
            raise RuntimeError("Conflicting edge detection already enabled for this channel")
        if callback is None:
            raise ValueError("this model needs a callback")
        self.callbacks[pin] = (edge, callback)
        if self._thread is None:
            self._thread = threading.Thread(target=self._dispatch, name="fake-gpio-events",
                                            daemon=True)
            self._thread.start()

    def remove_event_detect(self, pin: int) -> None:
        self.callbacks.pop(pin, None)

    def cleanup(self, pins: Any = None) -> None:
        chosen = self.directions.keys() if pins is None else (
            pins if isinstance(pins, (list, tuple)) else [pins])
        for p in list(chosen):
            self.callbacks.pop(p, None)
            self.directions.pop(p, None)
        if pins is None:
            self.mode = None

    def _make_pwm(self, pin: int, frequency: float) -> FakePWM:
        self._check(pin)
        if pin not in PWM_PINS:
            raise ValueError(f"Channel {pin} is not a PWM")
        if self.directions.get(pin) != OUT:
            raise RuntimeError("You must setup() the GPIO channel as an output first")
        pwm = FakePWM(pin, frequency)
        self.pwms[pin] = pwm
        return pwm

    # --- the outside world -------------------------------------------------------------
    def _set(self, pin: int, level: int) -> None:
        with self._lock:
            self.levels[pin] = level
        self.history.append((pin, level))

    def level(self, pin: int) -> int:
        with self._lock:
            return self.levels[pin]

    def drive(self, pin: int, level: Any) -> None:
        """An external signal sets an input pin; edge callbacks fire on their thread."""
        new = HIGH if level else LOW
        with self._lock:
            old = self.levels[pin]
            self.levels[pin] = new
        if old == new or pin not in self.callbacks:
            return
        edge, callback = self.callbacks[pin]
        if edge == BOTH or (edge == RISING) == (new == HIGH):
            self._queue.put((callback, pin))

    def _dispatch(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is not None:
                    item[0](item[1])
            finally:
                self._queue.task_done()

    def wait_idle(self) -> None:
        self._queue.join()


class FakePWM:
    def __init__(self, pin: int, frequency: float) -> None:
        self.pin = pin
        self.frequency = frequency
        self.duty: Optional[float] = None

    def start(self, duty: float) -> None:
        self.duty = duty

    def ChangeDutyCycle(self, duty: float) -> None:  # noqa: N802 - the Jetson.GPIO name
        if not 0 <= duty <= 100:
            raise ValueError("dutycycle must have a value from 0.0 to 100.0")
        self.duty = duty

    def ChangeFrequency(self, frequency: float) -> None:  # noqa: N802
        self.frequency = frequency

    def stop(self) -> None:
        self.duty = None
