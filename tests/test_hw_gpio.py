"""Gate, encoder and LED drivers over a model of Jetson.GPIO (edge callbacks on a thread)."""
import time

import pytest
from neurorave.hardware.board import EncoderConfig, GateConfig, LedConfig
from neurorave.hardware.encoder import GpioEncoder
from neurorave.hardware.errors import HardwareError
from neurorave.hardware.gates import GpioGates
from neurorave.hardware.interfaces import ButtonPress, EncoderStep, EventQueue, GateEdge
from neurorave.hardware.led import GpioLed
from neurorave.hardware.sim.fake_gpio import FakeGPIO


def _gpio():
    gpio = FakeGPIO()
    gpio.setmode(gpio.BOARD)
    return gpio


def _wait_events(events, count, timeout=2.0):
    deadline = time.monotonic() + timeout
    got = []
    while len(got) < count and time.monotonic() < deadline:
        events.wait(0.05)
        got += events.drain()
    return got


def test_inverted_gate_edges_are_debounced_and_timestamped():
    gpio, events = _gpio(), EventQueue()
    gates = GpioGates(gpio, [GateConfig("GATE1", 29, True, 5.0, "edge"),
                             GateConfig("GATE2", 31, False, 5.0, "edge")], events)
    try:
        # Pull-ups idle high: the inverted GATE1 reads low at the jack, GATE2 high.
        assert gates.levels() == [False, True]
        before = time.monotonic_ns()
        for level in (0, 1, 0, 1, 0):           # a bouncing contact settling low
            gpio.drive(29, level)
        gpio.wait_idle()
        time.sleep(0.02)                          # past the debounce window
        gpio.drive(29, 1)                         # the gate ends
        got = _wait_events(events, 2)
        assert [(e.gate, e.rising) for e in got] == [(0, True), (0, False)]
        assert all(isinstance(e, GateEdge) for e in got)
        assert before <= got[0].t_ns < got[1].t_ns <= time.monotonic_ns()
        assert gates.levels() == [False, True]
    finally:
        gates.close()
    assert 29 not in gpio.callbacks and 29 not in gpio.directions


def test_poll_mode_sees_edges_without_interrupts():
    gpio, events = _gpio(), EventQueue()
    gates = GpioGates(gpio, [GateConfig("GATE1", 29, False, 2.0, "poll")], events)
    try:
        assert 29 not in gpio.callbacks
        gpio.drive(29, 0)
        got = _wait_events(events, 1)
        assert got and got[0] == GateEdge(0, False, got[0].t_ns)
    finally:
        gates.close()


def test_gpio_refusal_names_the_part():
    gpio = FakeGPIO()        # no setmode(): Jetson.GPIO refuses every setup
    with pytest.raises(HardwareError, match="gates: GPIO refused"):
        GpioGates(gpio, [GateConfig("GATE1", 29, True, 2.0, "edge")], EventQueue())


ENCODER = EncoderConfig(11, 13, 15, True, 4, False, 300.0, 60.0, 2.0, False)


def _turn(gpio, sequence):
    for a, b in sequence:
        if gpio.level(11) != a:
            gpio.drive(11, a)
        if gpio.level(13) != b:
            gpio.drive(13, b)
        gpio.wait_idle()


def test_encoder_detents_and_bounce():
    gpio, events = _gpio(), EventQueue()
    encoder = GpioEncoder(gpio, ENCODER, events)
    try:
        cw = [(1, 0), (0, 0), (0, 1), (1, 1)]
        ccw = [(0, 1), (0, 0), (1, 0), (1, 1)]
        _turn(gpio, cw)
        _turn(gpio, [(1, 0), (1, 1), (1, 0)] + cw[1:])       # A bounces at the start
        _turn(gpio, ccw)
        _turn(gpio, [(1, 0), (1, 1)])                        # a half step back: nothing
        steps = [e.steps for e in _wait_events(events, 3) if isinstance(e, EncoderStep)]
        assert steps == [1, 1, -1]
    finally:
        encoder.close()


def test_encoder_switch_gestures():
    gpio, events = _gpio(), EventQueue()
    encoder = GpioEncoder(gpio, ENCODER, events)
    try:
        gpio.drive(15, 0)                  # active low: pressed
        gpio.wait_idle()
        time.sleep(0.03)
        assert encoder.is_pressed()
        gpio.drive(15, 1)
        short = _wait_events(events, 1)
        assert [e.kind for e in short] == ["short"]
        gpio.drive(15, 0)
        time.sleep(0.4)                    # held past long_press_ms
        long_press = _wait_events(events, 1)
        gpio.drive(15, 1)
        assert [e.kind for e in long_press] == ["long"]
        assert all(isinstance(e, ButtonPress) for e in short + long_press)
    finally:
        encoder.close()


def _eventually(condition, timeout=1.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def test_led_colours_blink_and_active_low():
    gpio = _gpio()
    led = GpioLed(gpio, LedConfig(32, 33, 37, False, False, 1000.0))

    def shown():
        return (gpio.level(32), gpio.level(33), gpio.level(37))
    try:
        led.set_colour("yellow")
        assert _eventually(lambda: shown() == (1, 1, 0))
        led.blink("blue", on_s=0.06, off_s=0.06, count=2)
        assert _eventually(lambda: shown() == (0, 0, 1))
        time.sleep(0.3)                     # two blinks done: yellow again
        assert shown() == (1, 1, 0)
        blue_on = [lvl for pin, lvl in gpio.history if pin == 37]
        assert blue_on.count(1) == 2
        with pytest.raises(ValueError, match="unknown colour"):
            led.set_colour("purple")
    finally:
        led.close()
    assert shown() == (0, 0, 0)


def test_led_active_low_and_pwm_where_the_pins_have_it():
    gpio = _gpio()
    led = GpioLed(gpio, LedConfig(32, 33, 37, True, True, 500.0))
    try:
        led.set_colour((0.25, 1.0, 1.0))
        assert _eventually(lambda: gpio.pwms[32].duty == pytest.approx(75.0))
        # Active low: 25 % red is 75 % duty low-time; blue (pin 37, no PWM) is on = low.
        assert gpio.pwms[32].duty == pytest.approx(75.0)
        assert gpio.pwms[33].duty == pytest.approx(0.0)
        assert 37 not in gpio.pwms and gpio.level(37) == 0
    finally:
        led.close()
    assert gpio.pwms[32].duty is None and gpio.level(37) == 1
