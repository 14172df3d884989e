"""The OLED (SSD1306 or SH1106, 128x64, I2C) through luma.oled, and its virtual twin.

`open_oled(bus, config)` builds luma.core's I2C serial interface over the shared bus
owner (so frames interleave with ADC reads block by block) and luma.oled's own device
class; rotation comes from the board file. `open_virtual_oled(config)` is luma.core's
`dummy` device, which keeps the last frame: the same preprocessing (rotation, mode)
as the real display, no wires. Both are wrapped in `LumaDisplay`, the Display
interface: `size`, `show(image)`, `frame()`, `close()`.

Rotation is done here, not by luma: luma.oled 3.14, the last release for Python 3.8
(JetPack), packs SH1106 frames wrongly when rotated a quarter turn (it strides rows by
the rotated width); the SH1106 model in the tests caught it. luma gets rotate=0 and
an image already turned to the glass's orientation, the same way luma would turn it.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Any, Callable, List, Optional, Tuple

from neurorave.hardware.board import DisplayConfig
from neurorave.hardware.errors import HardwareError
from neurorave.hardware.i2c import I2CBus


class LumaDisplay:
    def __init__(self, device: Any, part: str = "OLED", rotate: int = 0) -> None:
        self.device = device
        self.part = part
        self.rotate = rotate
        width, height = int(device.size[0]), int(device.size[1])
        self.size: Tuple[int, int] = (height, width) if rotate % 2 else (width, height)
        self._listeners: List[Callable[[Any], None]] = []
        self._last: Optional[Any] = None
        self._lock = threading.Lock()

    def add_listener(self, listener: Callable[[Any], None]) -> None:
        """Called with every frame shown (the virtual panel and recorders use it)."""
        self._listeners.append(listener)

    def show(self, image: Any) -> None:
        if image.size != self.size:
            raise ValueError(f"{self.part}: image is {image.size}, the display is {self.size}")
        if image.mode != self.device.mode:
            image = image.convert(self.device.mode)
        glass = image
        if self.rotate:
            # Quarter turns clockwise, as luma's rotate=N would do.
            glass = image.rotate(-90 * self.rotate, expand=True)
        with self._lock:
            self.device.display(glass)
            self._last = image.copy()
        for listener in self._listeners:
            listener(self._last)

    def frame(self) -> Optional[Any]:
        """The last image shown, as drawn (before the device's rotation)."""
        return self._last

    def close(self) -> None:
        # Blank the glass; an OLED left on burns in. Errors here must not mask others.
        with contextlib.suppress(Exception):
            self.device.cleanup()


def open_oled(bus: I2CBus, config: DisplayConfig) -> LumaDisplay:
    from luma.core.interface.serial import i2c
    from luma.oled.device import sh1106, ssd1306

    part = _part(config)
    bus.name(config.address, part)
    serial = i2c(bus=bus, address=config.address)
    chip = {"ssd1306": ssd1306, "sh1106": sh1106}[config.chip]
    device = chip(serial, width=config.width, height=config.height, rotate=0)
    return LumaDisplay(device, part, config.rotate)


class AwaitedDisplay:
    """An OLED that did not answer at start (a loose cable at power-on). The module plays
    on without its screen: each `show` tries to bring the OLED up again and raises the
    bus error while it stays silent (the daemon retries once a second and counts the
    fault); once it answers, frames go to it as usual."""

    def __init__(self, bus: I2CBus, config: DisplayConfig) -> None:
        self.part = _part(config)
        self.size: Tuple[int, int] = ((config.height, config.width) if config.rotate % 2
                                      else (config.width, config.height))
        self._bus = bus
        self._config = config
        self._display: Optional[LumaDisplay] = None

    def show(self, image: Any) -> None:
        if self._display is None:
            self._display = open_oled(self._bus, self._config)
        self._display.show(image)

    def frame(self) -> Optional[Any]:
        return self._display.frame() if self._display is not None else None

    def close(self) -> None:
        if self._display is not None:
            self._display.close()


def open_oled_or_await(bus: I2CBus, config: DisplayConfig) -> Any:
    """`open_oled`, or an `AwaitedDisplay` where the OLED does not answer yet."""
    try:
        return open_oled(bus, config)
    except HardwareError:
        return AwaitedDisplay(bus, config)


def _part(config: DisplayConfig) -> str:
    return f"OLED ({config.chip} at 0x{config.address:02X})"


def open_virtual_oled(config: DisplayConfig) -> LumaDisplay:
    from luma.core.device import dummy

    device = dummy(width=config.width, height=config.height, rotate=0, mode="1")
    return LumaDisplay(device, "OLED (virtual)", config.rotate)
