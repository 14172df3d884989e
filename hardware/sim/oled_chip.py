"""Models of the SSD1306 and SH1106 OLED controllers at the I2C byte level.

Every I2C write starts with a control byte: 0x00 means the rest are commands, 0x40
that the rest are display data (Co=0 in both). Commands are decoded with their
argument counts from the datasheets; data bytes land in the controller's RAM (GDDRAM)
as the addressing mode says: 8 pages of 8 pixel rows, one byte per column, least
significant bit on top.

- SSD1306: 128 columns; page (0x20 0x02, reset), horizontal (0x20 0x00) and vertical
  addressing, column window 0x21 and page window 0x22, page mode 0xB0-0xB7 plus
  0x00-0x0F / 0x10-0x1F column nibbles.
- SH1106: 132 columns, page addressing only; a 128-pixel panel shows columns 2..129.

`image()` is what the glass shows, for the usual module mounting (segment remap 0xA1
and COM scan 0xC8 as the init sequences set); the other settings mirror it. Nothing is
shown while the display is off (0xAE) or before the charge pump is on (SSD1306 0x8D).
"""
from __future__ import annotations

from typing import Any, Dict, List, Tuple

SSD1306_ARGS: Dict[int, int] = {0x20: 1, 0x21: 2, 0x22: 2, 0x81: 1, 0x8D: 1, 0xA8: 1, 0xD3: 1,
                                0xD5: 1, 0xD9: 1, 0xDA: 1, 0xDB: 1, 0x26: 6, 0x27: 6, 0x29: 5,
                                0x2A: 5, 0xA3: 2}
SH1106_ARGS: Dict[int, int] = {0x81: 1, 0xA8: 1, 0xD3: 1, 0xD5: 1, 0xD9: 1, 0xDA: 1, 0xDB: 1,
                               0xAD: 1}


class OledChip:
    def __init__(self, variant: str = "ssd1306", width: int = 128, height: int = 64) -> None:
        if variant not in ("ssd1306", "sh1106"):
            raise ValueError(variant)
        self.variant = variant
        self.width = width
        self.height = height
        self.ram_columns = 132 if variant == "sh1106" else 128
        self.column_offset = 2 if variant == "sh1106" else 0
        self.pages = 8
        self.ram = [bytearray(self.ram_columns) for _ in range(self.pages)]
        self.commands: List[Tuple[int, ...]] = []     # every command with its arguments
        self.data_bytes = 0
        self.nack = False
        self.display_on = False
        self.charge_pump = variant == "sh1106"         # the SH1106's DC-DC defaults on
        self.contrast = 0x7F if variant == "ssd1306" else 0x80
        self.inverted = False
        self.segment_remap = False
        self.com_reversed = False
        self.addressing = 2                            # page addressing after reset
        self.column = 0
        self.page = 0
        self.column_window = (0, self.ram_columns - 1)
        self.page_window = (0, self.pages - 1)
        self._pending: List[int] = []                  # command waiting for arguments

    def acknowledges(self) -> bool:
        return not self.nack

    def write(self, data: List[int]) -> None:
        if not data:
            return
        control, payload = data[0], data[1:]
        if control & 0x40:
            for byte in payload:
                self._data(byte)
        else:
            for byte in payload:
                self._command_byte(byte)

    def read(self, length: int) -> List[int]:
        # Status byte (SH1106 datasheet): bit 6 set while the display is off. The
        # drivers never read; hwtest probes with a quick write.
        return [0x00 if self.display_on else 0x40] * length

    # --- commands ------------------------------------------------------------------
    def _command_byte(self, byte: int) -> None:
        table = SSD1306_ARGS if self.variant == "ssd1306" else SH1106_ARGS
        if self._pending:
            self._pending.append(byte)
        else:
            self._pending = [byte]
        if len(self._pending) - 1 < table.get(self._pending[0], 0):
            return
        command = tuple(self._pending)
        self._pending = []
        self.commands.append(command)
        self._execute(command)

    def _execute(self, command: Tuple[int, ...]) -> None:
        op = command[0]
        if op in (0xAE, 0xAF):
            self.display_on = op == 0xAF
        elif op == 0x81:
            self.contrast = command[1]
        elif op in (0xA6, 0xA7):
            self.inverted = op == 0xA7
        elif op in (0xA0, 0xA1):
            self.segment_remap = op == 0xA1
        elif op in (0xC0, 0xC8):
            self.com_reversed = op == 0xC8
        elif op == 0x8D and self.variant == "ssd1306":
            self.charge_pump = bool(command[1] & 0x04)
        elif op == 0xAD and self.variant == "sh1106":
            self.charge_pump = bool(command[1] & 0x01)
        elif op == 0x20 and self.variant == "ssd1306":
            self.addressing = command[1] & 0b11
        elif op == 0x21 and self.variant == "ssd1306":
            self.column_window = (command[1] & 0x7F, command[2] & 0x7F)
            self.column = self.column_window[0]
        elif op == 0x22 and self.variant == "ssd1306":
            self.page_window = (command[1] & 0x07, command[2] & 0x07)
            self.page = self.page_window[0]
        elif 0xB0 <= op <= 0xB7:
            self.page = op & 0x07
        elif op <= 0x0F:
            self.column = (self.column & 0xF0) | op
        elif 0x10 <= op <= 0x1F:
            self.column = (self.column & 0x0F) | ((op & 0x0F) << 4)

    # --- display data ----------------------------------------------------------------
    def _data(self, byte: int) -> None:
        self.data_bytes += 1
        if self.column < self.ram_columns:
            self.ram[self.page][self.column] = byte
        first_col, last_col = self.column_window
        first_page, last_page = self.page_window
        if self.variant == "sh1106" or self.addressing == 2:
            # Page mode: the column advances and wraps inside the page (SH1106: stops
            # at the last column).
            if self.column < self.ram_columns - 1:
                self.column += 1
            elif self.variant == "ssd1306":
                self.column = 0
        elif self.addressing == 0:                      # horizontal
            if self.column >= last_col:
                self.column = first_col
                self.page = first_page if self.page >= last_page else self.page + 1
            else:
                self.column += 1
        else:                                           # vertical
            if self.page >= last_page:
                self.page = first_page
                self.column = first_col if self.column >= last_col else self.column + 1
            else:
                self.page += 1

    def ram_image(self) -> Any:
        """The RAM as a 1-bit image of the panel's columns (what luma addressed)."""
        from PIL import Image
        pixels = bytearray(self.width * self.height)
        for y in range(self.height):
            page, bit = divmod(y, 8)
            row = self.ram[page]
            for x in range(self.width):
                if row[x + self.column_offset] >> bit & 1:
                    pixels[y * self.width + x] = 255
        return Image.frombytes("L", (self.width, self.height), bytes(pixels)).convert("1")

    def image(self) -> Any:
        """What the glass shows (black when off or without its charge pump)."""
        from PIL import Image, ImageOps
        if not (self.display_on and self.charge_pump):
            return Image.new("1", (self.width, self.height))
        image = self.ram_image()
        if not self.segment_remap:
            image = ImageOps.mirror(image)
        if not self.com_reversed:
            image = ImageOps.flip(image)
        if self.inverted:
            image = image.point(lambda v: 255 - v)
        return image
