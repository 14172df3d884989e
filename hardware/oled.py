"""The OLED (SSD1306 or SH1106, 128x64, I2C) through luma.oled, and its virtual twin.

`open_oled(bus, config)` builds luma.core's I2C serial interface over the shared bus
owner (so frames interleave with ADC reads block by block) and luma.oled's own device
class; rotation comes from the board file. `open_virtual_oled(config)` is luma.core's
`dummy` device, which keeps the last frame: the same preprocessing (rotation, mode)
as the real display, no wires. Both are wrapped in `LumaDisplay`, the Display
interface: `size`, `show(image)`, `frame()`, `close()`.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Any, Callable, List, Optional, Tuple

from neurorave.hardware.board import DisplayConfig
from neurorave.hardware.i2c import I2CBus


class LumaDisplay:
    def __init__(self, device: Any, part: str = "OLED") -> None:
        self.device = device
        self.part = part
        self.size: Tuple[int, int] = (int(device.size[0]), int(device.size[1]))
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
        with self._lock:
            self.device.display(image)
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

    part = f"OLED ({config.chip} at 0x{config.address:02X})"
    bus.name(config.address, part)
    serial = i2c(bus=bus, address=config.address)
    chip = {"ssd1306": ssd1306, "sh1106": sh1106}[config.chip]
    device = chip(serial, width=config.width, height=config.height, rotate=config.rotate)
    return LumaDisplay(device, part)


def open_virtual_oled(config: DisplayConfig) -> LumaDisplay:
    from luma.core.device import dummy

    device = dummy(width=config.width, height=config.height, rotate=config.rotate, mode="1")
    return LumaDisplay(device, "OLED (virtual)")
