"""ADS1115 / ADS1015 analog-to-digital converter over I2C, and the CV inputs built on it.

Single-shot round robin: for each channel the driver writes the config register
(OS=1 start, MUX=AINx against ground, PGA, MODE=single-shot, data rate, comparator
off), waits one conversion time (1 / data rate), polls the OS bit until it reads 1
(conversion done), then reads the conversion register: 16-bit two's complement, most
significant byte first (ADS1015: 12 bits, left-aligned). smbus2 word transfers are
low byte first, so every word is byte-swapped.

A read never blocks longer than one conversion: after 1 / rate (plus the datasheet's
10 % oscillator tolerance and a scheduling margin) a chip that still reports
"converting" raises ConversionTimeout. Bus faults arrive as I2CError from the bus owner.
"""
from __future__ import annotations

import time
from typing import Callable, List, Sequence

from neurorave.hardware.board import ADC_RATES, FULL_SCALES, AdcConfig, CvConfig
from neurorave.hardware.errors import ConversionTimeout, HardwareError
from neurorave.hardware.i2c import I2CBus, swap16

REG_CONVERSION = 0x00
REG_CONFIG = 0x01
OS_START = 0x8000                 # bit 15: write 1 to start; reads 0 while converting
MUX_SINGLE_ENDED = 0b100          # bits 14:12 = 100 + channel: AINx against GND
MODE_SINGLE_SHOT = 0x0100         # bit 8
COMP_QUEUE_OFF = 0b11             # bits 1:0
# Oscillator tolerance (datasheet: +-10 %) and slack for a busy scheduler.
RATE_TOLERANCE = 1.10
POLL_MARGIN_S = 0.0005


def config_word(chip: str, channel: int, full_scale: float, data_rate: int) -> int:
    """The config register value that starts one single-shot conversion."""
    if not 0 <= channel <= 3:
        raise ValueError(f"channel {channel} is not 0..3")
    pga = FULL_SCALES.index(full_scale)
    rate_code = ADC_RATES[chip].index(data_rate)
    return (OS_START | (MUX_SINGLE_ENDED + channel) << 12 | pga << 9 | MODE_SINGLE_SHOT
            | rate_code << 5 | COMP_QUEUE_OFF)


def code_to_volts(chip: str, register: int, full_scale: float) -> float:
    """Conversion register (chip order, MSB first) to volts at the input."""
    signed = register - 0x10000 if register & 0x8000 else register
    if chip == "ads1015":
        return (signed >> 4) * full_scale / 2048.0   # 12 bits, left-aligned
    return signed * full_scale / 32768.0


class Ads1x15:
    """One ADS1115/ADS1015 chip on the shared bus."""

    def __init__(self, bus: I2CBus, config: AdcConfig,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.bus = bus
        self.config = config
        self.part = f"ADC ({config.chip} at 0x{config.address:02X})"
        bus.name(config.address, self.part)
        self.conversion_s = 1.0 / config.data_rate
        self._sleep = sleep
        self._clock = clock

    def read_volts(self, channel: int) -> float:
        """One single-shot conversion of AIN`channel` against ground, in volts."""
        cfg = self.config
        address = cfg.address
        word = config_word(cfg.chip, channel, cfg.full_scale, cfg.data_rate)
        start = self._clock()
        self.bus.write_word_data(address, REG_CONFIG, swap16(word))
        deadline = start + self.conversion_s * RATE_TOLERANCE + POLL_MARGIN_S
        self._sleep(self.conversion_s)
        while True:
            status = swap16(self.bus.read_word_data(address, REG_CONFIG))
            if status & OS_START:
                break
            # One last look after the deadline: a late wake-up must not count as a fault.
            if self._clock() > deadline:
                raise ConversionTimeout(self.part, f"conversion of AIN{channel} not ready "
                                                   f"after {self.conversion_s * 1e3:.2f} ms")
            self._sleep(self.conversion_s / 8)
        raw = swap16(self.bus.read_word_data(address, REG_CONVERSION))
        return code_to_volts(cfg.chip, raw, cfg.full_scale)


class AdcCvInputs:
    """The CV jacks read through an ADS1x15: panel volts via each CV's linear map."""

    def __init__(self, adc: Ads1x15, cvs: Sequence[CvConfig]) -> None:
        self.adc = adc
        self.cvs = list(cvs)
        self.names = [cv.name for cv in self.cvs]

    def read_volts(self) -> List[float]:
        return [cv.panel_volts(self.adc.read_volts(cv.channel)) for cv in self.cvs]

    def read_adc_volts(self) -> List[float]:
        """Raw ADC volts per CV (for calibration and hwtest)."""
        return [self.adc.read_volts(cv.channel) for cv in self.cvs]

    def close(self) -> None:
        pass


__all__ = ["Ads1x15", "AdcCvInputs", "HardwareError", "config_word", "code_to_volts"]
