"""Board files: the bundled ones load; a wrong key or value is one error naming it."""
import pytest
from neurorave.common.toml_reader import tomllib
from neurorave.hardware.board import available_boards, board_path, load_board
from neurorave.hardware.errors import BoardError


def test_bundled_boards_load():
    assert {"jetson-nano", "sim"} <= set(available_boards())
    nano = load_board("jetson-nano")
    assert not nano.virtual and nano.i2c_bus == 1
    assert nano.adc.chip == "ads1115" and nano.adc.address == 0x48 and nano.adc.data_rate == 860
    assert [cv.channel for cv in nano.cvs] == [0, 1, 2, 3]
    assert [g.name for g in nano.gates] == ["GATE1", "GATE2"]
    assert nano.display.chip == "ssd1306" and nano.display.address == 0x3C
    # The op-amp map: 0 V at the ADC is +5 V at the jack, 3.3 V is -5 V.
    assert nano.cvs[0].panel_volts(0.0) == pytest.approx(5.0)
    assert nano.cvs[0].panel_volts(3.3) == pytest.approx(-5.0, abs=1e-3)
    assert nano.cvs[0].adc_volts(nano.cvs[0].panel_volts(1.234)) == pytest.approx(1.234)
    sim = load_board("sim")
    assert sim.virtual and sim.name == "sim"


def _variant(tmp_path, old, new, count=1):
    with open(board_path("jetson-nano")) as handle:
        text = handle.read()
    assert old in text, old
    path = tmp_path / "board.toml"
    path.write_text(text.replace(old, new, count))
    return str(path)


@pytest.mark.parametrize("old, new, message", [
    ("bus = 1", "bus = 1\nspeed = 400", "i2c.speed: unknown key"),
    ('chip = "ads1115"', 'chip = "ads1116"', "adc.chip: 'ads1116' is not one of"),
    ("data_rate = 860", "data_rate = 3300", "adc.data_rate: 3300 is not one of"),
    ("address = 0x48", "address = 0x50", "adc.address"),
    ("full_scale = 4.096", 'full_scale = "4"', "adc.full_scale: must be a number"),
    ("channel = 1", "channel = 0", "cv[1].channel: channel 0 is already used by cv[0]"),
    ("scale = -3.0303", "scale = 0", "cv[0].scale: must not be zero"),
    ("max = 5.0", "max = -6.0", "cv[0].max"),
    ("pin = 29", "pin = 3", "gate[0].pin: 3 is not a GPIO pin on the 40-pin header "
                            "(it is I2C bus 1 SDA)"),
    ("pin = 31", "pin = 29", "gate[1].pin: pin 29 is already used by gate[0].pin"),
    ("pin_b = 13", "pin_b = 41", "encoder.pin_b: 41 is not a GPIO pin"),
    ("steps_per_detent = 4", "steps_per_detent = 3", "encoder.steps_per_detent"),
    ("inverted = true", "inverted = 1", "gate[0].inverted: must be true or false"),
    ('mode = "edge"', 'mode = "irq"', "gate[0].mode"),
    ("pwm = false", "pwm = true\nblue2 = 12", "led.blue2: unknown key"),
    ('chip = "ssd1306"', 'chip = "sh1107"', "display.chip"),
    ("rotate = 0", "rotate = 4", "display.rotate"),
    ("[encoder]", "[encoderr]", "encoder: missing table"),
])
def test_wrong_key_or_value_is_named(tmp_path, old, new, message):
    path = _variant(tmp_path, old, new)
    with pytest.raises(BoardError) as caught:
        load_board(path)
    assert "board.toml: " in str(caught.value)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_pwm_needs_a_pwm_pin(tmp_path):
    path = _variant(tmp_path, "red = 32\ngreen = 33", "red = 16\ngreen = 18")
    board = tmp_path / "board.toml"
    board.write_text(board.read_text().replace("pwm = false", "pwm = true"))
    with pytest.raises(BoardError, match="led.pwm: true, but none of the LED pins has PWM"):
        load_board(path)


def test_missing_unknown_and_broken_files(tmp_path):
    with pytest.raises(BoardError, match="no board named 'nano'"):
        load_board("nano")
    with pytest.raises(BoardError, match="no such file"):
        load_board(str(tmp_path / "none.toml"))
    bad = tmp_path / "bad.toml"
    bad.write_text("[board\nname = 1")
    with pytest.raises(BoardError, match="not valid TOML"):
        load_board(str(bad))
    assert tomllib is not None


@pytest.mark.parametrize("old, new, message", [
    ("scale = -3.0303", "scale = nan", "cv[0].scale: nan is not a finite number"),
    ("offset = 5.0", "offset = inf", "cv[0].offset: inf is not a finite number"),
    ("max = 5.0", "max = nan", "cv[0].max: nan is not a finite number"),
    ("long_press_ms = 600", "long_press_ms = nan", "encoder.long_press_ms: nan is not"),
])
def test_non_finite_numbers_are_named(tmp_path, old, new, message):
    path = _variant(tmp_path, old, new)
    with pytest.raises(BoardError) as caught:
        load_board(path)
    assert "board.toml: " in str(caught.value) and message in str(caught.value)


def test_binary_file_and_folder_are_named(tmp_path, monkeypatch):
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xab\xcd" * 100)
    with pytest.raises(BoardError, match=r"binary\.toml: not a TOML text file"):
        load_board(str(binary))
    # A folder named like a board is a path the user meant, not an unknown board name.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "boards").mkdir()
    with pytest.raises(BoardError, match="boards: is a folder"):
        load_board("boards")
    (tmp_path / "sim").mkdir()
    assert load_board("sim").name == "sim"   # the bundled board still wins
