"""open_panel: the same interfaces for the virtual board and the real drivers."""
import time

import pytest
from neurorave.hardware.board import load_board
from neurorave.hardware.errors import HardwareError, I2CError
from neurorave.hardware.interfaces import (
    ButtonPress,
    CvInputs,
    Display,
    Encoder,
    EncoderStep,
    GateEdge,
    GateInputs,
    RgbLed,
)
from neurorave.hardware.panel import open_panel
from neurorave.hardware.sim.ads1x15_chip import Ads1x15Chip
from neurorave.hardware.sim.fake_gpio import FakeGPIO
from neurorave.hardware.sim.i2c_bus import SimI2CBus
from neurorave.hardware.sim.oled_chip import OledChip
from PIL import Image

pytestmark = pytest.mark.filterwarnings("ignore:Image.Image.getdata:DeprecationWarning")


def _check_interfaces(panel):
    assert isinstance(panel.cvs, CvInputs)
    assert isinstance(panel.gates, GateInputs)
    assert isinstance(panel.encoder, Encoder)
    assert isinstance(panel.led, RgbLed)
    assert isinstance(panel.display, Display)
    assert list(panel.cvs.names) == ["CV1", "CV2", "CV3", "CV4"]
    assert list(panel.gates.names) == ["GATE1", "GATE2"]
    assert panel.display.size == (128, 64)


def test_virtual_panel_twins():
    with open_panel(load_board("sim")) as panel:
        _check_interfaces(panel)
        assert panel.virtual
        assert panel.cvs.read_volts() == [0.0, 0.0, 0.0, 0.0]
        assert panel.cvs.set_volts(1, 7.0) == 5.0           # kept inside the panel range
        panel.gates.set_gate(0, True, t_ns=10)
        panel.gates.set_gate(0, True, t_ns=11)              # no change, no edge
        panel.encoder.turn(-2, t_ns=12)
        panel.encoder.press("double", t_ns=13)
        panel.encoder.set_switch(True, t_ns=20)
        panel.encoder.tick(t_ns=20 + 700_000_000)
        assert panel.events.drain() == [GateEdge(0, True, 10), EncoderStep(-2, 12),
                                        ButtonPress("double", 13), ButtonPress("long", 20)]
        panel.led.blink("red", 0.1, 0.1, count=1)
        assert panel.led.shown() == (1.0, 0.0, 0.0)


def _bench():
    adc, oled = Ads1x15Chip("ads1115"), OledChip("ssd1306")
    return SimI2CBus({0x48: adc, 0x3C: oled}), adc, oled, FakeGPIO()


def test_real_drivers_over_chip_models():
    sim, adc, oled, gpio = _bench()
    board = load_board("jetson-nano")
    adc.set_inputs([board.cvs[i].adc_volts(v) for i, v in enumerate([-5.0, -1.0, 2.5, 4.0])])
    with open_panel(board, smbus=sim, gpio=gpio) as panel:
        _check_interfaces(panel)
        assert not panel.virtual
        assert panel.cvs.read_volts() == pytest.approx([-5.0, -1.0, 2.5, 4.0], abs=0.01)
        gpio.drive(29, 0)                 # GATE1 through its inverting stage: high
        assert panel.events.wait(2.0)
        time.sleep(0.01)
        assert [type(e) for e in panel.events.drain()] == [GateEdge]
        assert oled.display_on
    assert not oled.display_on            # closing blanks the OLED
    assert sim.overlaps == 0


def test_an_oled_silent_at_start_is_awaited_and_comes_back_when_it_answers():
    """A loose display cable at power-on must not keep the module from playing."""
    sim, adc, oled, gpio = _bench()
    del sim.chips[0x3C]
    board = load_board("jetson-nano")
    with open_panel(board, smbus=sim, gpio=gpio) as panel:
        _check_interfaces(panel)
        frame = Image.new("1", panel.display.size, 1)
        with pytest.raises(I2CError, match="OLED"):
            panel.display.show(frame)            # still silent: the daemon retries
        adc.set_inputs([board.cvs[i].adc_volts(1.0) for i in range(4)])
        assert panel.cvs.read_volts() == pytest.approx([1.0] * 4, abs=0.01)
        sim.attach(0x3C, oled)                   # the cable is pushed home
        panel.display.show(frame)
        assert oled.display_on and panel.display.frame() is not None
    assert not oled.display_on


def test_a_failing_part_at_open_releases_what_was_opened():
    sim, adc, oled, gpio = _bench()
    # Another process already watches the encoder's switch line: the encoder fails
    # after the gates were set up, and the gates must let go of their lines.
    gpio.setmode(gpio.BOARD)
    gpio.setup(15, gpio.IN)
    gpio.add_event_detect(15, gpio.BOTH, callback=lambda pin: None)
    with pytest.raises(HardwareError, match="encoder"):
        open_panel(load_board("jetson-nano"), smbus=sim, gpio=gpio)
    assert list(gpio.callbacks) == [15]
    assert 11 not in gpio.directions and 13 not in gpio.directions  # the encoder's own, freed
    assert 15 in gpio.directions                                      # the other user's, kept


def test_real_board_without_jetson_gpio_is_a_clear_error():
    sim, _, _, _ = _bench()
    with pytest.raises(HardwareError, match="GPIO: Jetson.GPIO cannot be used here"):
        open_panel(load_board("jetson-nano"), smbus=sim)
