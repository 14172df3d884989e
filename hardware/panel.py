"""`open_panel(board)`: every part of a board, real or virtual, behind its interface.

    panel = open_panel(load_board("sim"))          # the virtual twins
    panel = open_panel(load_board("jetson-nano"))  # /dev/i2c-1 and Jetson.GPIO

For a real board the I2C bus (smbus2-like object) and the GPIO module can be
injected: that is how the tests and `neurorave hwtest --board sim` run the real
drivers over models of the chips. Jetson.GPIO is imported only here, only when a real
board is opened without an injected module (it refuses to import off the Jetson).
"""
from __future__ import annotations

import contextlib
from typing import Any, List, Optional

from neurorave.hardware.ads1x15 import AdcCvInputs, Ads1x15
from neurorave.hardware.board import Board
from neurorave.hardware.errors import HardwareError
from neurorave.hardware.i2c import I2CBus
from neurorave.hardware.interfaces import CvInputs, Display, Encoder, EventQueue, GateInputs, RgbLed
from neurorave.hardware.oled import open_oled_or_await, open_virtual_oled


class Panel:
    """The parts of one board. `events` carries GateEdge, EncoderStep, ButtonPress."""

    def __init__(self, board: Board, events: EventQueue, cvs: CvInputs, gates: GateInputs,
                 encoder: Encoder, led: RgbLed, display: Display,
                 bus: Optional[I2CBus] = None) -> None:
        self.board = board
        self.events = events
        self.cvs = cvs
        self.gates = gates
        self.encoder = encoder
        self.led = led
        self.display = display
        self.bus = bus
        self.virtual = board.virtual

    def close(self) -> None:
        """Close every part; the first failure is raised after all were tried."""
        first: Optional[BaseException] = None
        for part in (self.led, self.display, self.encoder, self.gates, self.cvs, self.bus):
            if part is None:
                continue
            try:
                part.close()
            except Exception as exc:  # noqa: BLE001 - close the rest first
                first = first or exc
        if first is not None:
            raise first

    def __enter__(self) -> Panel:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def open_virtual_panel(board: Board) -> Panel:
    from neurorave.hardware.sim.twins import (
        VirtualCvInputs,
        VirtualEncoder,
        VirtualGates,
        VirtualLed,
    )
    events = EventQueue()
    return Panel(board, events, VirtualCvInputs(board.cvs),
                 VirtualGates([g.name for g in board.gates], events),
                 VirtualEncoder(board.encoder, events), VirtualLed(),
                 open_virtual_oled(board.display))


def import_jetson_gpio() -> Any:
    try:
        import Jetson.GPIO as gpio
    except ImportError as exc:
        raise HardwareError("GPIO", f"Jetson.GPIO cannot be used here ({exc}); install "
                                    "neurorave[jetson] on the module, or use --board sim") \
            from None
    except RuntimeError as exc:   # raised at import where there is no /dev/gpiochip0
        raise HardwareError("GPIO", f"Jetson.GPIO refused: {exc}") from None
    gpio.setwarnings(False)
    return gpio


def open_real_panel(board: Board, smbus: Any = None, gpio: Any = None) -> Panel:
    from neurorave.hardware.encoder import GpioEncoder
    from neurorave.hardware.gates import GpioGates
    from neurorave.hardware.led import GpioLed

    events = EventQueue()
    opened: List[Any] = []
    try:
        bus = I2CBus(smbus, board.i2c_bus) if smbus is not None else I2CBus.open(board.i2c_bus)
        opened.append(bus)
        if gpio is None:
            gpio = import_jetson_gpio()
        if gpio.getmode() is None:
            gpio.setmode(gpio.BOARD)
        cvs = AdcCvInputs(Ads1x15(bus, board.adc), board.cvs)
        # A silent OLED must not silence the module: it is awaited, not fatal.
        display = open_oled_or_await(bus, board.display)
        opened.append(display)
        gates = GpioGates(gpio, board.gates, events)
        opened.append(gates)
        encoder = GpioEncoder(gpio, board.encoder, events)
        opened.append(encoder)
        led = GpioLed(gpio, board.led)
    except BaseException:
        for part in reversed(opened):
            with contextlib.suppress(Exception):   # already failing: report the first
                part.close()
        raise
    return Panel(board, events, cvs, gates, encoder, led, display, bus)


def open_panel(board: Board, smbus: Any = None, gpio: Any = None) -> Panel:
    """The parts of `board`: virtual twins for a virtual board, else the real drivers."""
    if board.virtual and smbus is None and gpio is None:
        return open_virtual_panel(board)
    return open_real_panel(board, smbus, gpio)
