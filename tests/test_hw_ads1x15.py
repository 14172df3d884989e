"""The ADS1115/ADS1015 driver against a register-level model of the chip."""
import errno
import time

import pytest
from neurorave.hardware.ads1x15 import AdcCvInputs, Ads1x15, code_to_volts, config_word
from neurorave.hardware.board import AdcConfig, CvConfig
from neurorave.hardware.errors import ConversionTimeout, HardwareError, I2CError
from neurorave.hardware.i2c import I2CBus
from neurorave.hardware.sim.ads1x15_chip import Ads1x15Chip
from neurorave.hardware.sim.i2c_bus import SimI2CBus

ADDRESS = 0x48


def _rig(variant="ads1115", rate=None, full_scale=4.096, **chip_args):
    chip = Ads1x15Chip(variant, **chip_args)
    sim = SimI2CBus({ADDRESS: chip})
    rate = rate or (860 if variant == "ads1115" else 3300)
    adc = Ads1x15(I2CBus(sim), AdcConfig(variant, ADDRESS, rate, full_scale))
    return chip, sim, adc


def test_config_word_fields_match_the_datasheet():
    word = config_word("ads1115", 2, 4.096, 860)
    assert word >> 15 == 1                   # OS: start a conversion
    assert (word >> 12) & 0b111 == 0b110     # MUX: AIN2 against GND
    assert (word >> 9) & 0b111 == 0b001      # PGA: +-4.096 V
    assert (word >> 8) & 1 == 1              # single-shot
    assert (word >> 5) & 0b111 == 0b111      # 860 SPS
    assert word & 0b11 == 0b11               # comparator off
    assert config_word("ads1015", 0, 2.048, 3300) == 0xC5C3   # DR 110 = 3300 SPS


def test_wire_bytes_are_msb_first_despite_smbus_word_order():
    chip, sim, adc = _rig()
    chip.set_inputs([1.0, 0, 0, 0])
    adc.read_volts(0)
    first = sim.writes_to(ADDRESS)[0]
    # pointer 0x01, then the config MSB first: 0xC3 (OS, AIN0, PGA 4.096, single-shot).
    assert first == (0x01, 0xC3, 0xE3)


@pytest.mark.parametrize("variant", ["ads1115", "ads1015"])
@pytest.mark.parametrize("full_scale", [6.144, 4.096, 2.048, 0.256])
def test_round_trip_volts_through_pga_and_twos_complement(variant, full_scale):
    chip, _, adc = _rig(variant, full_scale=full_scale)
    lsb = full_scale / (32768 if variant == "ads1115" else 2048)
    for channel, volts in enumerate([0.0, full_scale * 0.37, full_scale * 0.999, 0.123]):
        chip.inputs[channel] = volts
        assert adc.read_volts(channel) == pytest.approx(volts, abs=lsb)


def test_negative_and_clipped_codes():
    chip, _, adc = _rig(full_scale=2.048)
    chip.inputs = [-0.5, 3.0, 0.0, 0.0]    # below ground; beyond the PGA range
    assert adc.read_volts(0) == pytest.approx(-0.5, abs=1e-4)
    assert adc.read_volts(1) == pytest.approx(2.048 * 32767 / 32768)
    assert code_to_volts("ads1115", 0x8000, 2.048) == -2.048
    assert code_to_volts("ads1015", 0x7FF0, 2.048) == pytest.approx(2.048 * 2047 / 2048)


def test_os_bit_reads_zero_while_converting_for_the_data_rate_time():
    now = [0.0]
    chip = Ads1x15Chip("ads1115", clock=lambda: now[0])
    sim = SimI2CBus({ADDRESS: chip})
    sim.write_word_data(ADDRESS, 1, 0x03C3)            # config 0xC303 (8 SPS), byte-swapped

    def status():
        word = sim.read_word_data(ADDRESS, 1)
        return ((word & 0xFF) << 8) | (word >> 8)

    assert status() & 0x8000 == 0
    now[0] = 0.124                                       # 1/8 s minus a millisecond
    assert status() & 0x8000 == 0
    now[0] = 0.126
    assert status() & 0x8000
    assert chip.conversions == 1


def test_starting_during_a_conversion_is_ignored():
    now = [0.0]
    chip = Ads1x15Chip("ads1115", clock=lambda: now[0])
    chip.inputs = [1.0, 2.0, 0, 0]
    sim = SimI2CBus({ADDRESS: chip})
    sim.write_word_data(ADDRESS, 1, 0x03C3)              # config 0xC303: AIN0, 8 SPS
    now[0] = 0.05
    sim.write_word_data(ADDRESS, 1, 0x03D3)              # AIN1 while busy: no new start
    now[0] = 0.2
    raw = sim.read_word_data(ADDRESS, 0)
    code = ((raw & 0xFF) << 8) | (raw >> 8)
    assert code == round(1.0 / 4.096 * 32768)
    assert chip.conversions == 1


def test_read_waits_about_one_conversion_and_mux_walks_channels():
    chip, sim, adc = _rig(rate=128)          # 7.8 ms per conversion: measurable
    chip.inputs = [0.5, 1.0, 1.5, 2.0]
    cv = AdcCvInputs(adc, [CvConfig(f"CV{i + 1}", i, -2.0, 5.0, -5, 5) for i in range(4)])
    start = time.monotonic()
    volts = cv.read_volts()
    elapsed = time.monotonic() - start
    assert volts == pytest.approx([4.0, 3.0, 2.0, 1.0], abs=1e-3)
    assert 4 / 128 <= elapsed < 4 / 128 * 3
    muxes = [(w[1] >> 4) & 0b111 for w in sim.writes_to(ADDRESS) if len(w) == 3]
    assert muxes == [0b100, 0b101, 0b110, 0b111]


def test_frozen_conversion_times_out_within_one_conversion():
    chip, _, adc = _rig(rate=250)
    chip.frozen = True
    start = time.monotonic()
    with pytest.raises(ConversionTimeout, match="AIN3"):
        adc.read_volts(3)
    assert time.monotonic() - start < 0.05


def test_missing_acknowledge_is_one_typed_error():
    chip, _, adc = _rig()
    chip.nack = True
    with pytest.raises(I2CError) as caught:
        adc.read_volts(0)
    assert caught.value.errno == errno.EREMOTEIO
    assert "ADC (ads1115 at 0x48)" in str(caught.value)
    assert "no acknowledge" in str(caught.value)


@pytest.mark.parametrize("code", [errno.ETIMEDOUT, errno.EIO])
def test_stuck_bus_is_the_same_typed_error(code):
    _, sim, adc = _rig()
    sim.stuck_errno = code
    with pytest.raises(I2CError) as caught:
        adc.read_volts(1)
    assert caught.value.errno == code
    assert isinstance(caught.value, HardwareError)


def test_wrong_address_is_reported_and_scan_lists_present_chips():
    sim = SimI2CBus({0x48: Ads1x15Chip(), 0x3C: Ads1x15Chip()})
    bus = I2CBus(sim)
    assert bus.scan() == [0x3C, 0x48]
    adc = Ads1x15(bus, AdcConfig("ads1115", 0x49, 860, 4.096))
    with pytest.raises(I2CError, match="0x49"):
        adc.read_volts(0)


def test_scan_probes_like_i2cdetect():
    sim = SimI2CBus({0x48: Ads1x15Chip(), 0x50: Ads1x15Chip()})
    assert I2CBus(sim).scan() == [0x48, 0x50]
    # A quick write (address only) at 0x48; a one-byte read in the EEPROM range.
    assert (0x48, "w", ()) in sim.log and (0x50, "r", (0x00,)) in sim.log
    assert not any(a == 0x48 and kind == "r" for a, kind, _ in sim.log)
