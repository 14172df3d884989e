"""luma.oled's own SSD1306 and SH1106 drivers over the bus owner and a recording bus."""
import errno
import threading
import time

import pytest
from neurorave.hardware.board import DisplayConfig
from neurorave.hardware.errors import I2CError
from neurorave.hardware.i2c import I2CBus
from neurorave.hardware.oled import open_oled, open_virtual_oled
from neurorave.hardware.sim.i2c_bus import SimI2CBus
from neurorave.hardware.sim.oled_chip import OledChip
from PIL import Image, ImageChops, ImageDraw

# luma.oled calls Image.getdata, deprecated in Pillow 13; not ours to change.
pytestmark = pytest.mark.filterwarnings("ignore:Image.Image.getdata:DeprecationWarning")

# The SSD1306 power-up sequence of the datasheet's application note (128x64, internal
# charge pump), then contrast, and display on once the RAM is cleared.
SSD1306_INIT = [(0xAE,), (0xD5, 0x80), (0xA8, 0x3F), (0xD3, 0x00), (0x40,), (0x8D, 0x14),
                (0x20, 0x00), (0xA1,), (0xC8,), (0xDA, 0x12), (0xD9, 0xF1), (0xDB, 0x40),
                (0xA4,), (0xA6,), (0x81, 0xCF)]


def _rig(chip_name, rotate=0):
    chip = OledChip(chip_name)
    sim = SimI2CBus({0x3C: chip})
    display = open_oled(I2CBus(sim), DisplayConfig(chip_name, 0x3C, 128, 64, rotate))
    return chip, sim, display


def _pattern(size=(128, 64)):
    image = Image.new("1", size)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, size[0] - 1, size[1] - 1), outline=255)
    draw.rectangle((10, 5, 40, 20), fill=255)
    draw.line((0, size[1] - 1, size[0] - 1, 0), fill=255)
    draw.point((1, 1), fill=255)
    return image


def _bits(image):
    return image.convert("L").point(lambda v: 255 if v else 0)


def _same(a, b):
    return ImageChops.difference(_bits(a), _bits(b)).getbbox() is None


def test_ssd1306_init_sequence_and_display_on():
    chip, sim, display = _rig("ssd1306")
    assert chip.commands[:len(SSD1306_INIT)] == SSD1306_INIT
    assert chip.commands[-1] == (0xAF,)
    assert chip.display_on and chip.charge_pump
    # Every transfer is an SMBus block: control byte 0x00 (commands) or 0x40 (data).
    assert {w[0] for w in sim.writes_to(0x3C)} <= {0x00, 0x40}
    assert max(len(w) for w in sim.writes_to(0x3C)) <= 33
    display.close()


def test_ssd1306_frame_bytes_land_in_gddram():
    chip, sim, display = _rig("ssd1306")
    sim.log.clear()
    display.show(_pattern())
    writes = sim.writes_to(0x3C)
    assert writes[0] == (0x00, 0x21, 0, 127, 0x22, 0, 7)    # column and page windows
    data = [b for w in writes if w[0] == 0x40 for b in w[1:]]
    assert len(data) == 1024
    # Page 0, column 1: the top border (bit 0) and the point at (1, 1) (bit 1).
    assert data[1] == 0b11
    # Page 1 (rows 8-15), column 20: inside the filled rectangle: every bit set.
    assert data[128 + 20] == 0xFF
    assert _same(chip.image(), _pattern())


def test_sh1106_init_and_page_addressed_frame():
    chip, sim, display = _rig("sh1106")
    assert chip.commands[0] == (0xAE,)
    assert (0xA8, 0x3F) in chip.commands and (0x81, 0x7F) in chip.commands
    assert chip.commands[-1] == (0xAF,)
    sim.log.clear()
    display.show(_pattern())
    writes = sim.writes_to(0x3C)
    page_commands = [w[1:] for w in writes if w[0] == 0x00]
    # One page at a time, starting at column 2 of the SH1106's 132-column RAM.
    assert page_commands == [(0xB0 + page, 0x02, 0x10) for page in range(8)]
    assert sum(len(w) - 1 for w in writes if w[0] == 0x40) == 1024
    assert chip.ram[0][0] == 0 and chip.ram[0][2 + 1] == 0b11
    assert _same(chip.image(), _pattern())


@pytest.mark.parametrize("chip_name", ["ssd1306", "sh1106"])
def test_rotation_from_the_board_file(chip_name):
    chip, _, display = _rig(chip_name, rotate=2)
    display.show(_pattern())
    assert _same(chip.image(), _pattern().rotate(180))
    chip, _, display = _rig(chip_name, rotate=1)
    assert display.size == (64, 128)
    display.show(_pattern((64, 128)))
    assert _same(chip.image(), _pattern((64, 128)).rotate(-90, expand=True))


def test_missing_display_is_one_typed_error():
    sim = SimI2CBus({})
    with pytest.raises(I2CError) as caught:
        open_oled(I2CBus(sim), DisplayConfig("ssd1306", 0x3C, 128, 64, 0))
    assert caught.value.errno == errno.EREMOTEIO
    assert "OLED (ssd1306 at 0x3C)" in str(caught.value)


def test_virtual_oled_keeps_the_frame_with_the_same_rotation():
    display = open_virtual_oled(DisplayConfig("ssd1306", 0x3C, 128, 64, 2))
    seen = []
    display.add_listener(seen.append)
    display.show(_pattern().convert("L"))      # other modes are converted to 1-bit
    assert len(seen) == 1 and _same(seen[0], _pattern())
    assert _same(display.device.image, _pattern().rotate(180))
    with pytest.raises(ValueError, match="display is"):
        display.show(Image.new("1", (10, 10)))


class _SlowChip:
    """Wraps a chip model so each transfer takes a while (widens any race)."""

    def __init__(self, chip):
        self.chip = chip

    def acknowledges(self):
        return self.chip.acknowledges()

    def write(self, data):
        time.sleep(0.0002)
        self.chip.write(data)

    def read(self, length):
        time.sleep(0.0002)
        return self.chip.read(length)


def _hammer(bus_for_adc, bus_for_oled, oled_chip, frames=4):
    from neurorave.hardware.ads1x15 import Ads1x15
    from neurorave.hardware.board import AdcConfig

    adc = Ads1x15(bus_for_adc, AdcConfig("ads1115", 0x48, 860, 4.096))
    stop = threading.Event()
    readings = []

    def read_adc():
        while not stop.is_set():
            readings.append(adc.read_volts(0))
    reader = threading.Thread(target=read_adc)
    reader.start()
    try:
        display = open_oled(bus_for_oled, DisplayConfig("ssd1306", 0x3C, 128, 64, 0))
        for _ in range(frames):
            display.show(_pattern())
    finally:
        stop.set()
        reader.join()
    return readings


def test_bus_owner_serialises_adc_reads_and_oled_frames():
    from neurorave.hardware.sim.ads1x15_chip import Ads1x15Chip

    oled, adc = OledChip("ssd1306"), Ads1x15Chip()
    adc.inputs[0] = 1.5
    sim = SimI2CBus({0x3C: _SlowChip(oled), 0x48: _SlowChip(adc)}, record=False)
    owner = I2CBus(sim)
    readings = _hammer(owner, owner, oled)
    assert sim.overlaps == 0
    assert len(readings) >= 3 and all(abs(v - 1.5) < 1e-3 for v in readings)
    assert _same(oled.image(), _pattern())
    # The check can fail: two owners of one bus let transfers collide.
    sim.overlaps = 0
    _hammer(I2CBus(sim), I2CBus(sim), oled)
    assert sim.overlaps > 0
