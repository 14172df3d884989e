"""`neurorave hwtest [--board FILE]`: the maker's bring-up test of the panel.

In order: the I2C bus and the devices on it, the ADC (one reading of every CV), the
OLED (a test pattern: border, top-left mark, checkerboard, diagonals, stripes), the
GPIO lines of gates, encoder and LED, the LED's seven colours, then a live view of
CV volts, gate edges and encoder steps (also drawn on the OLED) for a few seconds
(NEURORAVE_HWTEST_SECONDS, default 10; Ctrl-C ends it early). It exits 0 when every
part answered, else 1 with a last line naming the first part that failed.

`--board sim` runs the same real drivers over models of the chips (a simulated
bench with a demo patch playing on its inputs), so the tool itself is tested here.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Callable, List, Optional, TextIO

from neurorave.hardware.ads1x15 import AdcCvInputs, Ads1x15
from neurorave.hardware.board import Board, default_board, load_board
from neurorave.hardware.errors import HardwareError
from neurorave.hardware.i2c import I2CBus
from neurorave.hardware.interfaces import ButtonPress, EncoderStep, EventQueue, GateEdge
from neurorave.hardware.led import COLOURS
from neurorave.hardware.testpattern import monitor, test_pattern

DEFAULT_SECONDS = 10.0
SIM_SECONDS = 2.0


class Failed(Exception):
    """A part failed; the message names it."""


class HwTest:
    def __init__(self, board: Board, smbus: Any, gpio: Any, out: TextIO,
                 stimulate: Optional[Callable[[float], None]] = None,
                 colour_s: float = 0.3) -> None:
        self.board = board
        self.smbus = smbus
        self.gpio = gpio
        self.out = out
        self.stimulate = stimulate
        self.colour_s = colour_s
        self.failures: List[str] = []
        self.opened: List[Any] = []
        self.events = EventQueue()
        self.bus: Optional[I2CBus] = None
        self.cvs: Optional[AdcCvInputs] = None
        self.display: Any = None
        self.gates: Any = None
        self.encoder: Any = None
        self.led: Any = None

    def say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def step(self, name: str, action: Callable[[], None]) -> bool:
        try:
            action()
        except (HardwareError, Failed) as exc:
            self.say(f"  FAIL  {exc}")   # the message names the part
            self.failures.append(str(exc))
            return False
        return True

    # --- the steps ------------------------------------------------------------------------
    def check_bus(self) -> None:
        board = self.board
        self.bus = (I2CBus(self.smbus, board.i2c_bus) if self.smbus is not None
                    else I2CBus.open(board.i2c_bus))
        self.opened.append(self.bus)
        found = self.bus.scan()
        listing = " ".join(f"0x{a:02X}" for a in found) or "none"
        self.say(f"  I2C bus {board.i2c_bus}: devices at {listing}")
        expected = [(board.adc.address, f"ADC ({board.adc.chip})"),
                    (board.display.address, f"OLED ({board.display.chip})")]
        missing = [f"{part} not found at 0x{a:02X}" for a, part in expected if a not in found]
        if missing:
            raise Failed("; ".join(missing) + f" on I2C bus {board.i2c_bus} (check wiring, "
                         "power and the address pins)")

    def check_adc(self) -> None:
        assert self.bus is not None
        self.cvs = AdcCvInputs(Ads1x15(self.bus, self.board.adc), self.board.cvs)
        start = time.monotonic()
        raw = self.cvs.read_adc_volts()
        took = (time.monotonic() - start) * 1e3
        for cv, volts in zip(self.board.cvs, raw):
            self.say(f"  {cv.name} (AIN{cv.channel}): {volts:6.3f} V at the ADC = "
                     f"{cv.panel_volts(volts):+6.2f} V at the jack")
        self.say(f"  ok    ADC: {len(raw)} channels in {took:.1f} ms")

    def check_oled(self) -> None:
        from neurorave.hardware.oled import open_oled
        assert self.bus is not None
        self.display = open_oled(self.bus, self.board.display)
        self.opened.append(self.display)
        self.display.show(test_pattern(self.display.size))
        self.say("  ok    OLED: test pattern sent (look: border, a big mark top-left, "
                 "checkerboard, X, stripes)")

    def open_gpio(self) -> None:
        from neurorave.hardware.encoder import GpioEncoder
        from neurorave.hardware.gates import GpioGates
        from neurorave.hardware.led import GpioLed
        from neurorave.hardware.panel import import_jetson_gpio

        gpio = self.gpio if self.gpio is not None else import_jetson_gpio()
        if gpio.getmode() is None:
            gpio.setmode(gpio.BOARD)
        self.gates = GpioGates(gpio, self.board.gates, self.events)
        self.opened.append(self.gates)
        # Raw detents, no acceleration: the maker counts clicks.
        self.encoder = GpioEncoder(gpio, self.board.encoder._replace(acceleration=False),
                                   self.events)
        self.opened.append(self.encoder)
        self.led = GpioLed(gpio, self.board.led)
        self.opened.append(self.led)
        pins = [g.pin for g in self.board.gates]
        enc = self.board.encoder
        self.say(f"  ok    GPIO: gates on pins {pins}, encoder on {enc.pin_a}/{enc.pin_b} "
                 f"(switch {enc.pin_switch}), LED on {self.board.led[:3]}")

    def cycle_led(self) -> None:
        for name in COLOURS:
            if name == "off":
                continue
            self.led.set_colour(name)
            time.sleep(self.colour_s)
        self.led.set_colour("off")
        self.say("  ok    LED: red green blue yellow cyan magenta white (watch it)")

    def live(self, seconds: float) -> None:
        tty = hasattr(self.out, "isatty") and self.out.isatty()
        ranges = [(cv.min_volts, cv.max_volts) for cv in self.board.cvs]
        edges = [0] * len(self.board.gates)
        steps = 0
        presses: List[str] = []
        start = time.monotonic()
        next_print = 0.0
        self.say(f"  live for {seconds:g} s: turn knobs, patch gates, turn and push the encoder")
        try:
            while True:
                elapsed = time.monotonic() - start
                if self.stimulate is not None:
                    self.stimulate(elapsed)
                for event in self.events.drain():
                    if isinstance(event, GateEdge):
                        edges[event.gate] += 1
                    elif isinstance(event, EncoderStep):
                        steps += event.steps
                    elif isinstance(event, ButtonPress):
                        presses.append(event.kind)
                volts = self.cvs.read_volts() if self.cvs is not None else []
                levels = self.gates.levels() if self.gates is not None else []
                if self.display is not None:
                    self.display.show(monitor(self.display.size, volts, ranges, levels, steps,
                                              bool(self.encoder and self.encoder.is_pressed())))
                if elapsed >= next_print or elapsed >= seconds:
                    next_print += 0.1 if tty else 0.5
                    cv_text = " ".join(f"{v:+5.2f}" for v in volts)
                    gate_text = " ".join(f"{g.name}:{'H' if lvl else 'L'}/{n}" for g, lvl, n
                                         in zip(self.board.gates, levels, edges))
                    line = (f"  CV {cv_text} V | {gate_text} edges | encoder {steps:+d} "
                            f"presses {len(presses)}")
                    if tty:
                        print("\r" + line, end="", file=self.out, flush=True)
                    else:
                        self.say(line)
                if elapsed >= seconds:
                    break
                time.sleep(0.02)
        except KeyboardInterrupt:
            pass
        if tty:
            print(file=self.out)
        self.say(f"  ok    live: {sum(edges)} gate edges, encoder {steps:+d} steps, "
                 f"presses: {', '.join(presses) or 'none'}")
        self.summary = {"edges": edges, "steps": steps, "presses": presses}

    def run(self, seconds: float) -> int:
        self.say(f"hwtest: board {self.board.name} ({self.board.source})")
        try:
            if self.step("I2C", self.check_bus):
                self.step("ADC", self.check_adc)
                self.step("OLED", self.check_oled)
            gpio_ok = self.step("GPIO", self.open_gpio)
            if gpio_ok:
                self.step("LED", self.cycle_led)
            if not self.failures or gpio_ok:
                self.step("live", lambda: self.live(seconds))
        finally:
            for part in reversed(self.opened):
                try:
                    part.close()
                except Exception as exc:  # noqa: BLE001 - report and go on closing
                    self.say(f"  note  closing {part.__class__.__name__}: {exc}")
        if self.failures:
            self.say(f"hwtest: FAILED: {self.failures[0]}")
            return 1
        self.say("hwtest: every part answered")
        return 0


def _seconds(default: float) -> float:
    text = os.environ.get("NEURORAVE_HWTEST_SECONDS")
    if text is None:
        return default
    try:
        return max(0.0, float(text))
    except ValueError:
        from neurorave.common.errors import UserError
        raise UserError(f"NEURORAVE_HWTEST_SECONDS={text!r} is not a number") from None


def main(args: argparse.Namespace) -> int:
    board = load_board(getattr(args, "board", None) or default_board())
    if board.virtual:
        from neurorave.hardware.sim.bench import SimBench
        bench = SimBench(board)
        test = HwTest(board, bench.bus, bench.gpio, sys.stdout, bench.stimulate, colour_s=0.05)
        return test.run(_seconds(SIM_SECONDS))
    return HwTest(board, None, None, sys.stdout).run(_seconds(DEFAULT_SECONDS))
