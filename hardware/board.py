"""Board files: which chips sit where, on which pins, with which scaling.

`load_board("sim")`, `load_board("jetson-nano")` or `load_board("path/to/my.toml")`
returns a validated `Board`; any wrong key or value raises BoardError naming the file
and the key. Schema (all tables required; see hardware/boards/*.toml):

    [board]    name = "jetson-nano"; virtual = false   (true: the virtual panel)
    [i2c]      bus = 1                                 (/dev/i2c-N)
    [adc]      chip = "ads1115" | "ads1015"; address = 0x48..0x4B;
               data_rate = samples/s, one of the chip's rates (default: the top one);
               full_scale = PGA volts: 6.144 4.096 2.048 1.024 0.512 0.256
    [[cv]]     name; channel = 0..3; scale, offset: panel volts = scale * adc volts
               + offset; min, max: the panel range in volts (knob range on the
               virtual panel; readings are not clamped)
    [[gate]]   name; pin (BOARD number on the 40-pin header); inverted = true when
               a transistor stage inverts the jack; debounce_ms; mode = "edge" | "poll"
    [encoder]  pin_a, pin_b, pin_switch; switch_active_low; steps_per_detent = 1|2|4;
               reverse; long_press_ms; double_press_ms (0: no double press);
               debounce_ms; acceleration (quick turns speed up value edits in the menu)
    [led]      red, green, blue (pins); active_low; pwm (GPIO.PWM where the pins have
               them; on/off on the others); pwm_hz
    [display]  chip = "ssd1306" | "sh1106"; address = 0x3C | 0x3D; width = 128;
               height = 64; rotate = 0..3 (quarter turns clockwise, as luma)
"""
from __future__ import annotations

import os
from typing import Dict, List, NamedTuple

from neurorave.common.toml_reader import Table, load_toml
from neurorave.hardware.errors import BoardError

BOARDS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "boards")

# The Jetson Nano's 40-pin header (BOARD numbering): pins Jetson.GPIO can drive, and
# what the others are, so an error can say why a pin is wrong.
HEADER_GPIO_PINS = (7, 11, 12, 13, 15, 16, 18, 19, 21, 22, 23, 24, 26, 29, 31, 32, 33,
                    35, 36, 37, 38, 40)
HEADER_OTHER_PINS: Dict[int, str] = {
    1: "3.3 V", 2: "5 V", 3: "I2C bus 1 SDA", 4: "5 V", 5: "I2C bus 1 SCL", 6: "ground",
    8: "UART TX", 9: "ground", 10: "UART RX", 14: "ground", 17: "3.3 V", 20: "ground",
    25: "ground", 27: "I2C bus 0 SDA", 28: "I2C bus 0 SCL", 30: "ground", 34: "ground",
    39: "ground",
}
PWM_PINS = (32, 33)

ADC_RATES = {
    "ads1115": (8, 16, 32, 64, 128, 250, 475, 860),
    "ads1015": (128, 250, 490, 920, 1600, 2400, 3300),
}
FULL_SCALES = (6.144, 4.096, 2.048, 1.024, 0.512, 0.256)
DISPLAY_CHIPS = ("ssd1306", "sh1106")


class AdcConfig(NamedTuple):
    chip: str
    address: int
    data_rate: int
    full_scale: float


class CvConfig(NamedTuple):
    name: str
    channel: int
    scale: float
    offset: float
    min_volts: float
    max_volts: float

    def panel_volts(self, adc_volts: float) -> float:
        return self.scale * adc_volts + self.offset

    def adc_volts(self, panel_volts: float) -> float:
        return (panel_volts - self.offset) / self.scale


class GateConfig(NamedTuple):
    name: str
    pin: int
    inverted: bool
    debounce_ms: float
    mode: str


class EncoderConfig(NamedTuple):
    pin_a: int
    pin_b: int
    pin_switch: int
    switch_active_low: bool
    steps_per_detent: int
    reverse: bool
    long_press_ms: float
    double_press_ms: float
    debounce_ms: float
    acceleration: bool


class LedConfig(NamedTuple):
    red: int
    green: int
    blue: int
    active_low: bool
    pwm: bool
    pwm_hz: float


class DisplayConfig(NamedTuple):
    chip: str
    address: int
    width: int
    height: int
    rotate: int


class Board(NamedTuple):
    name: str
    virtual: bool
    source: str
    i2c_bus: int
    adc: AdcConfig
    cvs: List[CvConfig]
    gates: List[GateConfig]
    encoder: EncoderConfig
    led: LedConfig
    display: DisplayConfig


def board_path(name_or_path: str) -> str:
    """A bundled board's name ("sim", "jetson-nano") or a path to a TOML file."""
    bundled = os.path.join(BOARDS_DIR, name_or_path + ".toml")
    if os.sep not in name_or_path and not name_or_path.endswith(".toml"):
        if os.path.exists(bundled):
            return bundled
        names = ", ".join(available_boards())
        if os.path.isdir(name_or_path):  # the user meant a path, not a board's name
            raise BoardError(f"{name_or_path}: is a folder; give a board file (.toml) or a "
                             f"bundled board ({names})")
        raise BoardError(f"no board named {name_or_path!r} (bundled: {names}; or give a "
                         "path to a .toml file)")
    return name_or_path


def default_board() -> str:
    """The module's own board where its GPIO and I2C devices exist, the virtual one
    elsewhere (a laptop): a bare `neurorave hwtest` on the module tests the real panel."""
    on_module = os.path.exists("/dev/gpiochip0") and os.path.exists("/dev/i2c-1")
    return "jetson-nano" if on_module else "sim"


def available_boards() -> List[str]:
    return sorted(f[:-5] for f in os.listdir(BOARDS_DIR) if f.endswith(".toml"))


def load_board(name_or_path: str) -> Board:
    path = board_path(name_or_path)
    return parse_board(load_toml(path, BoardError), os.path.basename(path))


def _pin(table: Table, name: str, used: Dict[int, str]) -> int:
    pin = table.take(name, int)
    key = table.key(name)
    if pin not in HEADER_GPIO_PINS:
        what = HEADER_OTHER_PINS.get(pin)
        why = f"it is {what}" if what else "the header has pins 1 to 40"
        raise table.fail(key, f"{pin} is not a GPIO pin on the 40-pin header ({why})")
    if pin in used:
        raise table.fail(key, f"pin {pin} is already used by {used[pin]}")
    used[pin] = key
    return pin


def parse_board(data: Dict, source: str) -> Board:
    top = Table(data, "", source, BoardError)
    head = top.table("board")
    assert head is not None
    name = head.take("name", str)
    virtual = head.take("virtual", bool, False)
    head.finish()

    i2c = top.table("i2c")
    assert i2c is not None
    bus = i2c.take("bus", int, minimum=0, maximum=255)
    i2c.finish()

    adc_t = top.table("adc")
    assert adc_t is not None
    chip = adc_t.take("chip", str, choices=tuple(ADC_RATES))
    address = adc_t.take("address", int, choices=(0x48, 0x49, 0x4A, 0x4B))
    rate = adc_t.take("data_rate", int, ADC_RATES[chip][-1], choices=ADC_RATES[chip])
    full_scale = adc_t.take("full_scale", float, 4.096, choices=FULL_SCALES)
    adc_t.finish()
    adc = AdcConfig(chip, address, rate, full_scale)

    cvs: List[CvConfig] = []
    channels: Dict[int, str] = {}
    for cv in top.tables("cv"):
        channel = cv.take("channel", int, minimum=0, maximum=3)
        if channel in channels:
            raise cv.fail(cv.key("channel"), f"channel {channel} is already used by "
                                             f"{channels[channel]}")
        channels[channel] = cv.where
        scale = cv.take("scale", float)
        if scale == 0:
            raise cv.fail(cv.key("scale"), "must not be zero")
        lo = cv.take("min", float)
        hi = cv.take("max", float)
        if hi <= lo:
            raise cv.fail(cv.key("max"), f"{hi} must be above min ({lo})")
        cvs.append(CvConfig(cv.take("name", str), channel, scale, cv.take("offset", float, 0.0),
                            lo, hi))
        cv.finish()
    if not cvs:
        raise top.fail("cv", "a board needs at least one [[cv]]")

    pins: Dict[int, str] = {}
    gates: List[GateConfig] = []
    for gate in top.tables("gate"):
        gates.append(GateConfig(gate.take("name", str), _pin(gate, "pin", pins),
                                gate.take("inverted", bool, True),
                                gate.take("debounce_ms", float, 2.0, minimum=0, maximum=100),
                                gate.take("mode", str, "edge", choices=("edge", "poll"))))
        gate.finish()

    enc = top.table("encoder")
    assert enc is not None
    encoder = EncoderConfig(
        _pin(enc, "pin_a", pins), _pin(enc, "pin_b", pins), _pin(enc, "pin_switch", pins),
        enc.take("switch_active_low", bool, True),
        enc.take("steps_per_detent", int, 4, choices=(1, 2, 4)),
        enc.take("reverse", bool, False),
        enc.take("long_press_ms", float, 600.0, minimum=50, maximum=10000),
        enc.take("double_press_ms", float, 300.0, minimum=0, maximum=2000),
        enc.take("debounce_ms", float, 5.0, minimum=0, maximum=100),
        enc.take("acceleration", bool, True))
    enc.finish()

    led_t = top.table("led")
    assert led_t is not None
    led_pins = [_pin(led_t, colour, pins) for colour in ("red", "green", "blue")]
    pwm = led_t.take("pwm", bool, False)
    if pwm and not any(pin in PWM_PINS for pin in led_pins):
        raise led_t.fail(led_t.key("pwm"), f"true, but none of the LED pins has PWM (the "
                                           f"header's PWM pins are {PWM_PINS})")
    led = LedConfig(led_pins[0], led_pins[1], led_pins[2], led_t.take("active_low", bool, False),
                    pwm, led_t.take("pwm_hz", float, 1000.0, minimum=1, maximum=100000))
    led_t.finish()

    disp = top.table("display")
    assert disp is not None
    display = DisplayConfig(disp.take("chip", str, choices=DISPLAY_CHIPS),
                            disp.take("address", int, 0x3C, choices=(0x3C, 0x3D)),
                            disp.take("width", int, 128, choices=(128,)),
                            disp.take("height", int, 64, choices=(64, 32)),
                            disp.take("rotate", int, 0, choices=(0, 1, 2, 3)))
    disp.finish()
    if display.address == adc.address:  # pragma: no cover - ranges cannot overlap today
        raise disp.fail(disp.key("address"), "collides with the ADC's address")
    top.finish()
    return Board(name, virtual, source, bus, adc, cvs, gates, encoder, led, display)
