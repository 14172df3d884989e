"""A register-level model of the ADS1115 / ADS1015 (TI datasheets SBAS444, SBAS473).

It answers I2C transactions as the chip does: the first written byte sets the address
pointer (0 conversion, 1 config, 2 lo_thresh, 3 hi_thresh); two more bytes write that
register, most significant byte first; reads return the pointed register MSB first.

- Config resets to 0x8583. Writing OS=1 in single-shot mode (MODE=1) starts one
  conversion of the MUX input at the PGA range; OS reads 0 until 1 / data rate has
  passed (times `rate_error`, the oscillator's deviation), then 1. OS=1 written during
  a conversion does nothing. MODE=0 converts continuously.
- The conversion register holds the last result: ADS1115 16-bit two's complement,
  ADS1015 12-bit left-aligned; inputs beyond the PGA range clip to full scale.
- Faults: `nack = True` makes the chip ignore its address (errno 121 on the bus),
  `frozen = True` makes a started conversion never finish.
"""
from __future__ import annotations

import time
from typing import Callable, List, Optional, Sequence

RATES = {
    "ads1115": (8, 16, 32, 64, 128, 250, 475, 860),
    "ads1015": (128, 250, 490, 920, 1600, 2400, 3300, 3300),
}
FULL_SCALE = (6.144, 4.096, 2.048, 1.024, 0.512, 0.256, 0.256, 0.256)
# MUX codes 0..3 are differential pairs, 4..7 single-ended against ground.
MUX_PAIRS = ((0, 1), (0, 3), (1, 3), (2, 3), (0, None), (1, None), (2, None), (3, None))
RESET_CONFIG = 0x8583


class Ads1x15Chip:
    def __init__(self, variant: str = "ads1115", clock: Callable[[], float] = time.monotonic,
                 rate_error: float = 1.0) -> None:
        if variant not in RATES:
            raise ValueError(variant)
        self.variant = variant
        self.clock = clock
        self.rate_error = rate_error
        self.inputs: List[float] = [0.0, 0.0, 0.0, 0.0]   # volts at AIN0..AIN3
        self.registers = [0x0000, RESET_CONFIG, 0x8000, 0x7FFF]
        self.pointer = 0
        self.nack = False
        self.frozen = False
        self.conversions = 0
        self._done_at: Optional[float] = None      # single-shot conversion in flight
        self._continuous_from: Optional[float] = None
        self._result_pending = 0

    # --- analog side -------------------------------------------------------------
    def set_inputs(self, volts: Sequence[float]) -> None:
        self.inputs = [float(v) for v in volts]

    def _convert(self) -> int:
        config = self.registers[1]
        plus, minus = MUX_PAIRS[(config >> 12) & 0b111]
        volts = self.inputs[plus] - (self.inputs[minus] if minus is not None else 0.0)
        full_scale = FULL_SCALE[(config >> 9) & 0b111]
        if self.variant == "ads1015":
            code = max(-2048, min(2047, int(round(volts / full_scale * 2048))))
            return (code << 4) & 0xFFFF
        code = max(-32768, min(32767, int(round(volts / full_scale * 32768))))
        return code & 0xFFFF

    def _period(self) -> float:
        rate = RATES[self.variant][(self.registers[1] >> 5) & 0b111]
        return self.rate_error / rate

    def _busy(self) -> bool:
        """Advance time: finish a conversion whose time has come."""
        now = self.clock()
        if self._continuous_from is not None:
            if now - self._continuous_from >= self._period():
                self.registers[0] = self._convert()
                self.conversions += 1
            return True
        if self._done_at is None:
            return False
        if self.frozen or now < self._done_at:
            return True
        self.registers[0] = self._result_pending
        self._done_at = None
        self.conversions += 1
        return False

    # --- I2C side ----------------------------------------------------------------
    def acknowledges(self) -> bool:
        return not self.nack

    def write(self, data: Sequence[int]) -> None:
        if not data:
            return
        self.pointer = data[0] & 0b11
        if len(data) < 3:
            return                      # pointer write only (a read follows)
        value = ((data[1] & 0xFF) << 8) | (data[2] & 0xFF)
        if self.pointer == 0:
            return                      # conversion register is read-only
        if self.pointer != 1:
            self.registers[self.pointer] = value
            return
        busy = self._busy()
        # OS is a command bit, not storage: it reads as the converting status.
        self.registers[1] = value & 0x7FFF
        if not value & 0x0100:          # MODE 0: continuous conversion
            self._done_at = None
            self._continuous_from = self.clock()
        else:
            self._continuous_from = None
            if value & 0x8000 and not busy:
                self._result_pending = self._convert()
                self._done_at = self.clock() + self._period()

    def read(self, length: int) -> List[int]:
        busy = self._busy()
        value = self.registers[self.pointer]
        if self.pointer == 1 and not busy:
            value |= 0x8000
        data = [(value >> 8) & 0xFF, value & 0xFF]
        return (data * ((length + 1) // 2))[:length]
