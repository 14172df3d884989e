"""A simulated workbench: models of the panel's chips wired as a board file says.

The ADS1x15 and OLED models sit on a simulated I2C bus at the board's addresses, a
Jetson.GPIO model carries the gate, encoder and LED lines, and `stimulate(t)` plays
a patch onto the analog and digital inputs as the outside world would: CV volts
through the inverse of each CV's linear map onto the ADC pins, gate levels through
the inverting stage onto the GPIO pins, encoder turns as quadrature sequences and
presses on the switch line. `neurorave hwtest --board sim` runs the real drivers on
it; tests add faults (`adc.nack`, `adc.frozen`, `bus.stuck_errno`, a missing chip).
"""
from __future__ import annotations

import time
from typing import List, Optional, Tuple

from neurorave.common.toml_reader import tomllib
from neurorave.hardware.board import Board
from neurorave.hardware.patch import Patch, parse_patch
from neurorave.hardware.sim.ads1x15_chip import Ads1x15Chip
from neurorave.hardware.sim.fake_gpio import FakeGPIO
from neurorave.hardware.sim.i2c_bus import SimI2CBus
from neurorave.hardware.sim.oled_chip import OledChip

DEMO_PATCH = """
[cv.1]
shape = "sine"
rate = 0.5
range = [-4.0, 4.0]
[cv.2]
volts = 1.0
[cv.3]
shape = "saw"
rate = 1.0
range = [0.0, 5.0]
[cv.4]
volts = -2.5
[gate.1]
clock = 4.0
[gate.2]
times = [0.3, 0.9]
length = 0.2
[[encoder.turn]]
at = 0.2
steps = 2
[[encoder.turn]]
at = 0.6
steps = -1
[[encoder.press]]
at = 0.4
"""

CW = [(1, 0), (0, 0), (0, 1), (1, 1)]      # (A, B) from the rest state 11
CCW = [(0, 1), (0, 0), (1, 0), (1, 1)]


class SimBench:
    def __init__(self, board: Board, patch: Optional[Patch] = None) -> None:
        self.board = board
        self.adc = Ads1x15Chip(board.adc.chip)
        self.oled = OledChip(board.display.chip, board.display.width, board.display.height)
        self.bus = SimI2CBus({board.adc.address: self.adc, board.display.address: self.oled},
                             record=False)
        self.gpio = FakeGPIO()
        self.patch = patch or parse_patch(tomllib.loads(DEMO_PATCH), "hwtest demo patch")
        self._t = -1e-9
        self._press_until: Optional[float] = None
        for gate in board.gates:                      # no gate patched: jack low
            self.gpio.drive(gate.pin, 1 if gate.inverted else 0)
        self.stimulate(0.0)

    def _turn(self, steps: int) -> None:
        enc = self.board.encoder
        sequence: List[Tuple[int, int]] = (CW if (steps > 0) != enc.reverse else CCW)
        for _ in range(abs(steps)):
            for a, b in sequence:
                self.gpio.drive(enc.pin_a, a)
                self.gpio.drive(enc.pin_b, b)
                self.gpio.wait_idle()

    def _switch(self, pressed: bool) -> None:
        enc = self.board.encoder
        self.gpio.drive(enc.pin_switch, (not pressed) if enc.switch_active_low else pressed)

    def stimulate(self, t: float) -> None:
        """Set every input as the patch says at `t` seconds (loops every 1.2 s)."""
        t = t % 1.2
        if t < self._t:
            self._t = -1e-9
        volts = [0.0] * 4
        for i, cv in enumerate(self.board.cvs):
            patched = self.patch.cv_volts(i, t)
            volts[cv.channel] = cv.adc_volts(patched if patched is not None else 0.0)
        self.adc.set_inputs(volts)
        for event in self.patch.events(self._t, t):
            if event.kind == "gate":
                gate = self.board.gates[event.jack]
                self.gpio.drive(gate.pin, (not event.value) if gate.inverted else event.value)
            elif event.kind == "turn":
                self._turn(event.value)
            else:
                self._switch(True)
                self._press_until = t + 0.05
        if self._press_until is not None and t >= self._press_until:
            self._switch(False)
            self._press_until = None
        self._t = t

    def settle(self) -> None:
        self.gpio.wait_idle()
        time.sleep(0.01)
