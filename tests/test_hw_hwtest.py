"""`neurorave hwtest`: the real drivers over a simulated bench, faults named by part."""
import errno
import io
import os

import pytest
from neurorave.firmware.cli import main as cli_main
from neurorave.hardware.board import load_board
from neurorave.hardware.hwtest import HwTest
from neurorave.hardware.sim.bench import SimBench
from neurorave.hardware.sim.fake_gpio import FakeGPIO
from PIL import Image, ImageChops

pytestmark = pytest.mark.filterwarnings("ignore:Image.Image.getdata:DeprecationWarning")
REFERENCE = os.path.join(os.path.dirname(__file__), "data", "hw_test_pattern.png")


def _run(bench, seconds=0.0, gpio=None, colour_s=0.0):
    out = io.StringIO()
    test = HwTest(bench.board, bench.bus, gpio or bench.gpio, out, bench.stimulate,
                  colour_s=colour_s)
    status = test.run(seconds)
    return status, out.getvalue().splitlines(), test


def test_cli_hwtest_on_the_sim_board(capsys, monkeypatch):
    monkeypatch.setenv("NEURORAVE_HWTEST_SECONDS", "1.3")
    assert cli_main(["hwtest", "--board", "sim"]) == 0
    out = capsys.readouterr().out
    assert "I2C bus 1: devices at 0x3C 0x48" in out
    assert "CV2 (AIN1):  1.320 V at the ADC =  +1.00 V at the jack" in out
    assert out.rstrip().endswith("hwtest: every part answered")
    live = [line for line in out.splitlines() if "ok    live:" in line][0]
    # The demo patch: a 4 Hz clock and two gates, two detents forward then one back, a press.
    edges = int(live.split("live: ")[1].split(" gate")[0])
    assert edges >= 8
    assert "encoder +1 steps" in live and "presses: short" in live


def test_oled_shows_the_reference_test_pattern_through_luma():
    bench = SimBench(load_board("sim"))
    test = HwTest(bench.board, bench.bus, bench.gpio, io.StringIO())
    test.check_bus()
    test.check_oled()
    with Image.open(REFERENCE) as reference:
        shown = bench.oled.image().convert("L")
        assert ImageChops.difference(shown, reference.convert("L")).getbbox() is None
    test.display.close()


def test_every_led_colour_reaches_the_pins():
    bench = SimBench(load_board("sim"))
    status, _, _ = _run(bench, colour_s=0.03)     # long enough for the LED thread
    assert status == 0
    led = bench.board.led
    seen = set()
    levels = {led.red: 0, led.green: 0, led.blue: 0}
    for pin, level in bench.gpio.history:
        if pin in levels:
            levels[pin] = level
            seen.add((levels[led.red], levels[led.green], levels[led.blue]))
    assert {(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (0, 1, 1), (1, 0, 1), (1, 1, 1)} <= seen


@pytest.mark.parametrize("fault, part", [
    (lambda b: setattr(b.adc, "nack", True), "ADC (ads1115) not found at 0x48"),
    (lambda b: setattr(b.adc, "frozen", True), "ADC (ads1115 at 0x48): conversion of AIN0"),
    (lambda b: b.bus.chips.pop(0x3C), "OLED (ssd1306) not found at 0x3C"),
    (lambda b: setattr(b.bus, "stuck_errno", errno.ETIMEDOUT), "bus timed out"),
    (lambda b: setattr(b.bus, "stuck_errno", errno.EIO), "I/O error on the bus"),
])
def test_a_failing_part_is_named_and_exits_non_zero(fault, part):
    bench = SimBench(load_board("sim"))
    fault(bench)
    status, lines, _ = _run(bench)
    assert status == 1
    assert lines[-1].startswith("hwtest: FAILED: ") and part in lines[-1]


def test_gpio_refusal_is_named():
    bench = SimBench(load_board("sim"))
    gpio = FakeGPIO(pins=(11, 13, 15, 32, 33, 37))        # no pin 29 on this "header"
    gpio.setmode(gpio.BOARD)
    status, lines, _ = _run(bench, gpio=gpio)
    assert status == 1
    assert lines[-1] == "hwtest: FAILED: gates: GPIO refused: Channel 29 is invalid"


def test_real_board_without_the_module_names_the_bus(capsys, monkeypatch):
    monkeypatch.setenv("NEURORAVE_HWTEST_SECONDS", "0")
    if os.path.exists("/dev/i2c-1"):
        pytest.skip("this machine has an I2C bus 1")
    assert cli_main(["hwtest", "--board", "jetson-nano"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("hwtest: FAILED: I2C: /dev/i2c-1 does not exist")


def test_bad_board_and_bad_setting_are_one_line(tmp_path, capsys, monkeypatch):
    bad = tmp_path / "bad.toml"
    bad.write_text('[board]\nname = "x"\ncolour = 1\n')
    assert cli_main(["hwtest", "--board", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.toml: board.colour: unknown key" in err
    monkeypatch.setenv("NEURORAVE_HWTEST_SECONDS", "soon")
    assert cli_main(["hwtest", "--board", "sim"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "NEURORAVE_HWTEST_SECONDS" in err
