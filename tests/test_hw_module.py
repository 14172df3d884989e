"""On the module itself (Jetson Nano with the panel): the real bus, chips and GPIO lines.

Marked `hardware`: skipped everywhere without /dev/gpiochip0 and /dev/i2c-1. Run them
on the module with `python -m pytest -m hardware tests/test_hw_module.py`, panel
connected and nothing patched.
"""
import time

import pytest
from neurorave.hardware.board import load_board
from neurorave.hardware.panel import open_panel
from neurorave.hardware.testpattern import test_pattern as make_test_pattern

pytestmark = pytest.mark.hardware


@pytest.fixture(scope="module")
def panel():
    with open_panel(load_board("jetson-nano")) as p:
        yield p


def test_both_chips_answer_on_the_bus(panel):
    board = panel.board
    found = panel.bus.scan()
    assert board.adc.address in found and board.display.address in found


def test_cv_readings_are_in_range_and_fast(panel):
    start = time.monotonic()
    for _ in range(10):
        volts = panel.cvs.read_volts()
    per_read = (time.monotonic() - start) / 10
    for cv, v in zip(panel.board.cvs, volts):
        assert cv.min_volts - 1.0 <= v <= cv.max_volts + 1.0, cv.name
    # Four single-shot conversions at the top rate, plus bus time.
    assert per_read < 4 * (1.0 / panel.board.adc.data_rate) * 2 + 0.005


def test_unpatched_gates_read_low(panel):
    assert panel.gates.levels() == [False] * len(panel.board.gates)


def test_display_and_led_accept_frames_and_colours(panel):
    panel.display.show(make_test_pattern(panel.display.size))  # raises on a bus fault
    for colour, rgb in (("red", (1, 0, 0)), ("green", (0, 1, 0)), ("blue", (0, 0, 1)),
                        ("off", (0, 0, 0))):
        panel.led.set_colour(colour)
        time.sleep(0.05)
        # What the LED thread drove onto the three lines.
        assert tuple(round(v) for v in panel.led.shown) == rgb, colour
