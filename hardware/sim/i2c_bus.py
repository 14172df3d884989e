"""An smbus2-like bus with chip models attached, recording every transaction.

Each method does what smbus2.SMBus does on the wire and hands the bytes to the chip
model at that address: `write_word_data(a, reg, w)` sends reg, low byte, high byte
(SMBus order); `read_word_data` returns the first byte read as the LOW byte, exactly
the byte-order trap of a big-endian chip on SMBus. With no chip at an address, or a
chip that does not acknowledge, the call raises OSError(121) like the kernel driver;
`stuck_errno = 110` (or 5) makes every transfer fail as a bus held low does.

A chip model has `acknowledges()`, `write(bytes)` and `read(n)`.
"""
from __future__ import annotations

import errno
import os
import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple

Transaction = Tuple[int, str, Tuple[int, ...]]   # (address, "w" or "r", bytes)


class SimI2CBus:
    def __init__(self, chips: Optional[Dict[int, Any]] = None, record: bool = True) -> None:
        self.chips: Dict[int, Any] = dict(chips or {})
        self.log: List[Transaction] = []
        self.record = record
        self.stuck_errno: Optional[int] = None
        self.closed = False
        self._lock = threading.Lock()
        # Guards against a driver that forgets the bus owner's lock.
        self.overlaps = 0

    def attach(self, address: int, chip: Any) -> None:
        self.chips[address] = chip

    def _chip(self, address: int) -> Any:
        if self.closed:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        if self.stuck_errno is not None:
            raise OSError(self.stuck_errno, os.strerror(self.stuck_errno))
        chip = self.chips.get(address)
        if chip is None or not chip.acknowledges():
            raise OSError(errno.EREMOTEIO, os.strerror(errno.EREMOTEIO))
        return chip

    def _write(self, address: int, data: Sequence[int]) -> None:
        if not self._lock.acquire(blocking=False):
            self.overlaps += 1
            self._lock.acquire()
        try:
            self._chip(address).write(list(data))
            if self.record:
                self.log.append((address, "w", tuple(data)))
        finally:
            self._lock.release()

    def _read(self, address: int, register: Optional[int], length: int) -> List[int]:
        with self._lock:
            chip = self._chip(address)
            if register is not None:
                chip.write([register])
            data = chip.read(length)
            if self.record:
                if register is not None:
                    self.log.append((address, "w", (register,)))
                self.log.append((address, "r", tuple(data)))
            return data

    # smbus2.SMBus API ------------------------------------------------------------
    def write_word_data(self, address: int, register: int, value: int) -> None:
        self._write(address, [register, value & 0xFF, (value >> 8) & 0xFF])

    def read_word_data(self, address: int, register: int) -> int:
        low, high = self._read(address, register, 2)
        return low | (high << 8)

    def write_byte_data(self, address: int, register: int, value: int) -> None:
        self._write(address, [register, value & 0xFF])

    def write_i2c_block_data(self, address: int, register: int, data: Sequence[int]) -> None:
        if len(data) > 32:
            raise OSError(errno.EINVAL, "SMBus block write longer than 32 bytes")
        self._write(address, [register] + list(data))

    def read_i2c_block_data(self, address: int, register: int, length: int) -> List[int]:
        return self._read(address, register, length)

    def write_quick(self, address: int) -> None:
        """Address only, no data: does anyone acknowledge?"""
        self._write(address, [])

    def read_byte(self, address: int) -> int:
        return self._read(address, None, 1)[0]

    def close(self) -> None:
        self.closed = True

    # For tests -------------------------------------------------------------------
    def writes_to(self, address: int) -> List[Tuple[int, ...]]:
        return [data for a, kind, data in self.log if a == address and kind == "w"]
