"""The one owner of the shared I2C bus (the ADC and the OLED sit on the same wires).

Every transfer goes through `I2CBus`, which holds a lock for the length of one
transaction, so an ADC read from the scheduler's worker and an OLED frame from the
display never interleave on the wire. A frame is sent as 32-byte SMBus blocks, each
locked on its own, so an ADC read waits at most one block (~1 ms at 400 kHz), never a
whole frame.

Any OSError from the bus (errno 121 no acknowledge, 110 timeout of a stuck bus, 5 I/O
error...) becomes one `I2CError` naming the part, so the firmware catches one type.
The smbus2-like object underneath is injected (tests, the simulated bench) or opened
here from /dev/i2c-N.
"""
from __future__ import annotations

import errno as errno_codes
import os
import threading
from typing import Any, Callable, Dict, List, Sequence, TypeVar

from neurorave.hardware.errors import HardwareError, I2CError

T = TypeVar("T")

_ERRNO_WORDS = {
    errno_codes.EREMOTEIO: "no acknowledge (loose cable, wrong address or no power?)",
    errno_codes.ETIMEDOUT: "bus timed out (SDA or SCL held low: stuck bus?)",
    errno_codes.EIO: "I/O error on the bus",
    errno_codes.ENXIO: "no such device",
}


def swap16(word: int) -> int:
    """smbus word transfers send the low byte first; big-endian chips want the high."""
    return ((word & 0xFF) << 8) | ((word >> 8) & 0xFF)


class I2CBus:
    def __init__(self, smbus: Any, number: int = -1, owns: bool = False) -> None:
        self._smbus = smbus
        self.number = number
        self._owns = owns
        self._lock = threading.RLock()
        self.names: Dict[int, str] = {}  # address -> part name, for error messages

    @classmethod
    def open(cls, number: int) -> I2CBus:
        path = f"/dev/i2c-{number}"
        if not os.path.exists(path):
            raise HardwareError("I2C", f"{path} does not exist (enable the bus, or wrong "
                                       "bus number in the board file)")
        import smbus2
        try:
            return cls(smbus2.SMBus(number), number, owns=True)
        except PermissionError:
            raise HardwareError("I2C", f"no permission for {path} (add the user to the "
                                       "i2c group)") from None

    def name(self, address: int, part: str) -> None:
        self.names[address] = part

    def _run(self, address: int, action: Callable[[], T]) -> T:
        with self._lock:
            try:
                return action()
            except OSError as exc:
                words = _ERRNO_WORDS.get(exc.errno or 0, str(exc))
                part = self.names.get(address, f"device 0x{address:02X}")
                raise I2CError(part, address, exc.errno,
                               f"{words} [errno {exc.errno}]") from None

    # Transfers (the smbus2 method names, address first).
    def read_word_data(self, address: int, register: int) -> int:
        return self._run(address, lambda: self._smbus.read_word_data(address, register))

    def write_word_data(self, address: int, register: int, value: int) -> None:
        self._run(address, lambda: self._smbus.write_word_data(address, register, value))

    def read_i2c_block_data(self, address: int, register: int, length: int) -> List[int]:
        return self._run(address, lambda: list(
            self._smbus.read_i2c_block_data(address, register, length)))

    def write_i2c_block_data(self, address: int, register: int, data: Sequence[int]) -> None:
        self._run(address, lambda: self._smbus.write_i2c_block_data(address, register,
                                                                     list(data)))

    def probe(self, address: int) -> bool:
        """Is a device acknowledging at `address`? Probed as i2cdetect does by default:
        a quick write, except a one-byte read where EEPROMs live (0x30-0x37, 0x50-0x5F),
        which a quick write could corrupt. Display controllers are write-mostly parts, so a
        write is the safer question to ask them."""
        if 0x30 <= address <= 0x37 or 0x50 <= address <= 0x5F:
            def action() -> Any:
                return self._smbus.read_byte(address)
        else:
            def action() -> Any:
                return self._smbus.write_quick(address)
        try:
            self._run(address, action)
        except I2CError as exc:
            if exc.errno in (errno_codes.EREMOTEIO, errno_codes.ENXIO):
                return False
            raise
        return True

    def scan(self, addresses: Sequence[int] = range(0x08, 0x78)) -> List[int]:
        """Addresses that acknowledge. A stuck bus raises instead of listing nothing."""
        return [a for a in addresses if self.probe(a)]

    def close(self) -> None:
        if self._owns:
            with self._lock:
                self._smbus.close()
