"""The encoder driver under fast turns: one step per detent, whatever the speed."""
import time

from neurorave.hardware.board import EncoderConfig
from neurorave.hardware.encoder import GpioEncoder
from neurorave.hardware.interfaces import EncoderStep, EventQueue
from neurorave.hardware.sim.fake_gpio import FakeGPIO

# As the boards have it: acceleration on (it is the menu's to apply, to values only).
ENCODER = EncoderConfig(11, 13, 15, True, 4, False, 600.0, 300.0, 5.0, True)
CW = [(1, 0), (0, 0), (0, 1), (1, 1)]
CCW = [(0, 1), (0, 0), (1, 0), (1, 1)]


def _turn(gpio, sequence):
    for a, b in sequence:
        if gpio.level(11) != a:
            gpio.drive(11, a)
        if gpio.level(13) != b:
            gpio.drive(13, b)
        gpio.wait_idle()


def test_fifteen_fast_detents_are_fifteen_steps():
    gpio = FakeGPIO()
    gpio.setmode(gpio.BOARD)
    events = EventQueue()
    encoder = GpioEncoder(gpio, ENCODER, events)
    try:
        start = time.monotonic()
        for _ in range(15):
            _turn(gpio, CW)
        for _ in range(4):
            _turn(gpio, CCW)
        fast = time.monotonic() - start
        got = []
        deadline = time.monotonic() + 2.0
        while len(got) < 19 and time.monotonic() < deadline:
            events.wait(0.05)
            got += [e for e in events.drain() if isinstance(e, EncoderStep)]
        assert fast < 19 * 0.06      # faster than the old acceleration's slow limit
        assert [e.steps for e in got] == [1] * 15 + [-1] * 4
        assert encoder.invalid_transitions == 0
    finally:
        encoder.close()
