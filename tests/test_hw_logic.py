"""Pure logic of the panel inputs: debouncing, quadrature decoding, button gestures."""
import time

from hypothesis import given, settings
from hypothesis import strategies as st
from neurorave.hardware.button import Acceleration, ButtonGestures
from neurorave.hardware.debounce import Debouncer
from neurorave.hardware.quadrature import QuadratureDecoder

MS = 1_000_000
WINDOW = 2 * MS

# A clean signal: transitions at least two windows apart; after each, a burst of
# bounce toggles inside the window, an even number so the line settles where it should.
bursts = st.lists(
    st.tuples(st.integers(2 * WINDOW + 1, 50 * MS),                        # gap before it
              st.lists(st.integers(1, WINDOW - 1), max_size=12, unique=True)
              .map(sorted).filter(lambda xs: len(xs) % 2 == 0)),
    min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(bursts, st.booleans())
def test_bounce_inside_the_window_gives_exactly_the_clean_edges(signal, start_level):
    debouncer = Debouncer(WINDOW, start_level)
    t, level, edges, expected = 0, start_level, [], []
    for gap, bounces in signal:
        t += gap
        level = not level
        expected.append((level, t))
        edges += debouncer.update(level, t)
        raw = level
        for offset in bounces:
            raw = not raw
            edges += debouncer.update(raw, t + offset)
        assert raw == level
        edges += debouncer.tick(t + WINDOW + MS)
    assert edges == expected


@settings(max_examples=100, deadline=None)
@given(st.integers(WINDOW + 1, 20 * MS))
def test_a_pulse_longer_than_the_window_is_never_lost(width):
    debouncer = Debouncer(WINDOW, False)
    edges = debouncer.update(True, 0)
    # The line goes low again while still locked out, and stays low.
    edges += debouncer.update(False, WINDOW // 2)
    edges += debouncer.tick(width)
    assert edges == [(True, 0), (False, WINDOW)]


CW_FROM_11 = [0b10, 0b00, 0b01, 0b11]
CCW_FROM_11 = [0b01, 0b00, 0b10, 0b11]


def _toggle_line(state, line):
    return state ^ (0b10 if line == "a" else 0b01)


moves = st.lists(st.tuples(st.sampled_from([1, -1]),
                           st.lists(st.tuples(st.integers(0, 3), st.integers(1, 3)),
                                    max_size=4)),
                 min_size=0, max_size=30)


@settings(max_examples=300, deadline=None)
@given(moves)
def test_one_detent_one_step_whatever_the_bounce(detents):
    decoder = QuadratureDecoder(steps_per_detent=4, state=0b11)
    reported = []
    expected = []
    for direction, bounce in detents:
        sequence = CW_FROM_11 if direction > 0 else CCW_FROM_11
        bounce_after = dict(bounce)           # transition index -> flicker pairs
        state = 0b11
        for i, new in enumerate(sequence):
            changed = "a" if (state ^ new) & 0b10 else "b"
            reported.append(decoder.update(new))
            # The contact that just moved flickers back and forth before settling.
            for _ in range(bounce_after.get(i, 0)):
                reported.append(decoder.update(_toggle_line(new, changed)))
                reported.append(decoder.update(new))
            state = new
        expected.append(direction)
    assert [r for r in reported if r] == expected
    assert decoder.invalid == 0


def test_invalid_transitions_and_half_turns_give_no_step():
    decoder = QuadratureDecoder(steps_per_detent=4, state=0b11)
    assert [decoder.update(s) for s in (0b00, 0b11)] == [0, 0]      # both lines at once
    assert decoder.invalid == 2
    assert [decoder.update(s) for s in (0b10, 0b00, 0b10, 0b11)] == [0, 0, 0, 0]
    reverse = QuadratureDecoder(steps_per_detent=4, state=0b11, reverse=True)
    assert [reverse.update(s) for s in CW_FROM_11][-1] == -1
    half = QuadratureDecoder(steps_per_detent=2, state=0b11)
    assert [half.update(s) for s in CW_FROM_11] == [0, 1, 0, 1]


def _feed(gestures, timeline, end):
    out = []
    for t, pressed in timeline:
        out += gestures.update(pressed, t)
    for t in range(timeline[-1][0], end, MS):
        out += gestures.tick(t)
    return out


def test_short_long_and_double_presses():
    def make():
        return ButtonGestures(long_ns=600 * MS, double_ns=300 * MS, debounce_ns=5 * MS)
    assert _feed(make(), [(0, True), (100 * MS, False)], 1000 * MS) == [("short", 0)]
    assert _feed(make(), [(0, True), (700 * MS, False)], 1000 * MS) == [("long", 0)]
    assert _feed(make(), [(0, True), (100 * MS, False), (250 * MS, True), (350 * MS, False)],
                 1000 * MS) == [("double", 0)]
    # The second press comes too late: two short presses.
    assert _feed(make(), [(0, True), (100 * MS, False), (500 * MS, True), (600 * MS, False)],
                 2000 * MS) == [("short", 0), ("short", 500 * MS)]
    # The long press is reported while the button is still held.
    held = make()
    held.update(True, 0)
    assert held.tick(599 * MS) == [] and held.tick(600 * MS) == [("long", 0)]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 4 * MS), max_size=8).map(sorted))
def test_switch_bounce_makes_one_short_press(bounces):
    gestures = ButtonGestures(long_ns=600 * MS, double_ns=300 * MS, debounce_ns=5 * MS)
    timeline = [(0, True)]
    level = True
    for offset in sorted(set(bounces)):
        level = not level
        timeline.append((offset, level))
    timeline.append((5 * MS, True))
    timeline.append((100 * MS, False))
    timeline.append((100 * MS + 2 * MS, True))    # release bounce
    timeline.append((100 * MS + 3 * MS, False))
    assert _feed(gestures, timeline, 800 * MS) == [("short", 0)]


def test_no_double_press_reports_short_at_release():
    gestures = ButtonGestures(long_ns=600 * MS, double_ns=0)
    assert gestures.update(True, 0) == []
    assert gestures.update(False, 50 * MS) == [("short", 0)]


def test_acceleration_grows_with_speed():
    acc = Acceleration(slow_ns=60 * MS, fast_ns=10 * MS, max_factor=8)
    assert acc.apply(1, 0) == 1
    assert acc.apply(1, 100 * MS) == 1                # slow: as turned
    assert acc.apply(-1, 105 * MS) == -8              # very fast
    middle = acc.apply(1, 140 * MS)
    assert 1 < middle < 8


def test_a_driver_ticker_survives_failing_calls_and_recovers():
    """A GPIO read that fails (a loose header, a driver hiccup) must not end polling."""
    import threading

    from neurorave.hardware.ticker import Ticker

    calls = []
    healthy = threading.Event()

    def action(t_ns):
        calls.append(t_ns)
        if len(calls) <= 3:
            raise OSError(5, "Input/output error")
        healthy.set()

    ticker = Ticker(0.001, action, "test")
    try:
        assert healthy.wait(5.0), "the ticker stopped after the first failure"
        time.sleep(0.05)
    finally:
        ticker.stop()
    assert ticker.errors == 3 and isinstance(ticker.error, OSError)
    assert len(calls) > 10  # back at its period once the calls succeed


# ---- fast repeats: every detent and every press counted exactly once -------------------
fast_detents = st.lists(st.tuples(st.sampled_from([1, -1]), st.lists(st.integers(0, 3),
                                                                     max_size=4)),
                        min_size=1, max_size=60)


@settings(max_examples=200, deadline=None)
@given(fast_detents)
def test_fast_detents_with_repeated_reads_count_once_each(detents):
    """Both lines' callbacks may read the same state (one edge, two reads): a state read
    again changes nothing, and back-to-back detents give one step each."""
    decoder = QuadratureDecoder(steps_per_detent=4, state=0b11)
    reported = []
    for direction, repeats in detents:
        sequence = CW_FROM_11 if direction > 0 else CCW_FROM_11
        again = set(repeats)
        for i, state in enumerate(sequence):
            reported.append(decoder.update(state))
            if i in again:
                reported.append(decoder.update(state))
    assert [r for r in reported if r] == [d for d, _ in detents]
    assert decoder.invalid == 0


# One press: (gap since the last release, time held), both past the debounce window.
presses = st.lists(st.tuples(st.integers(6, 400), st.integers(6, 900)), min_size=1,
                   max_size=25)


@settings(max_examples=300, deadline=None)
@given(presses, st.booleans())
def test_fast_presses_each_count_once(timeline, doubles):
    """However fast the presses come, each is in exactly one gesture: a short, a long,
    or one half of a double (a short press followed by a long one is both)."""
    double_ns = 300 * MS if doubles else 0
    gestures = ButtonGestures(long_ns=600 * MS, double_ns=double_ns, debounce_ns=5 * MS)
    t, out, starts = 0, [], []
    for gap, held in timeline:
        t += gap * MS
        starts.append(t)
        out += gestures.update(True, t)
        for step in range(t + 5 * MS, t + held * MS, 5 * MS):   # the 5 ms switch poll
            out += gestures.tick(step)
        t += held * MS
        out += gestures.update(False, t)
    for step in range(t, t + 1000 * MS, 5 * MS):
        out += gestures.tick(step)
    counted = sum(2 if kind == "double" else 1 for kind, _ in out)
    assert counted == len(timeline), out
    assert [t for _, t in out] == sorted(t for _, t in out)      # in order
    assert {t for _, t in out} <= set(starts)
    longs = [start for kind, start in out if kind == "long"]
    assert longs == [s for s, (_, held) in zip(starts, timeline) if held >= 600]


def test_a_short_press_then_a_long_one_is_not_lost():
    gestures = ButtonGestures(long_ns=600 * MS, double_ns=300 * MS, debounce_ns=5 * MS)
    timeline = [(0, True), (100 * MS, False), (200 * MS, True), (900 * MS, False)]
    assert _feed(gestures, timeline, 1500 * MS) == [("short", 0), ("long", 200 * MS)]
