"""Errors of the panel hardware layer.

Two families:
- `HardwareError`: a part misbehaves at run time (bus error, conversion that never
  finishes, GPIO refused). The daemon catches it, shows it and keeps playing; the
  `part` attribute names the part ("ADC", "OLED", "GATE1"...).
- `BoardError` / `PatchError`: a file the user wrote is wrong. They are `UserError`s,
  so the command line prints them as one line naming the key.
"""
from __future__ import annotations

from typing import Optional

from neurorave.common.errors import UserError


class HardwareError(Exception):
    """A panel part failed; `part` names it for the maker and the firmware."""

    def __init__(self, part: str, message: str) -> None:
        super().__init__(f"{part}: {message}")
        self.part = part


class I2CError(HardwareError):
    """Any failed I2C transfer (errno 121 no acknowledge, 110 timeout, 5 I/O error...).

    One type for every bus fault so the firmware has one thing to catch; `errno`
    and `address` tell them apart.
    """

    def __init__(self, part: str, address: int, errno: Optional[int], detail: str) -> None:
        super().__init__(part, f"I2C transfer to 0x{address:02X} failed: {detail}")
        self.address = address
        self.errno = errno


class ConversionTimeout(HardwareError):
    """The ADC never reported a finished conversion within one conversion time."""


class BoardError(UserError):
    """A board file is wrong; the message names the file and the key."""


class PatchError(UserError):
    """A patch file is wrong; the message names the file and the key."""
