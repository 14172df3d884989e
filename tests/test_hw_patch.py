"""Patch files: modulators, clocks, gate lists, encoder events; errors name the key."""
import math

import pytest
from neurorave.common.toml_reader import tomllib
from neurorave.hardware.errors import PatchError
from neurorave.hardware.patch import load_patch, parse_patch

PATCH = """
seconds = 4
[cv.1]
volts = 2.5
[cv.2]
shape = "sine"
rate = 0.5
range = [-2.0, 4.0]
[cv.3]
shape = "saw"
rate = 1.0
range = [0.0, 5.0]
[cv.4]
shape = "ramp"
rate = 0.25
range = [5.0, -5.0]
[gate.1]
clock = 2.0
duty = 0.25
start = 0.1
stop = 1.5
[gate.2]
times = [0.5, 1.0]
length = 0.2
[[encoder.turn]]
at = 1.0
steps = -2
[[encoder.press]]
at = 0.75
kind = "double"
"""


def _parse(text, name="p.toml"):
    return parse_patch(tomllib.loads(text), name)


def test_cv_sources():
    patch = _parse(PATCH)
    assert patch.seconds == 4
    assert patch.cv_volts(0, 3.0) == 2.5
    assert patch.cv_volts(1, 0.0) == pytest.approx(-2.0)          # waves start at range[0]
    assert patch.cv_volts(1, 1.0) == pytest.approx(4.0)           # half a cycle at 0.5 Hz
    assert patch.cv_volts(1, 0.5) == pytest.approx(1.0)
    assert patch.cv_volts(2, 0.25) == pytest.approx(1.25)
    assert patch.cv_volts(2, 1.25) == pytest.approx(1.25)         # the saw repeats
    assert patch.cv_volts(3, 2.0) == pytest.approx(0.0)           # ramp down, halfway
    assert patch.cv_volts(3, 9.0) == pytest.approx(-5.0)          # then holds
    assert patch.cv_curve(2, [0.0, 0.5]) == pytest.approx([0.0, 2.5])
    assert patch.cv_volts(7, 1.0) is None


def test_shapes_stay_in_range_and_have_the_rate():
    for shape in ("sine", "triangle", "saw", "square"):
        patch = _parse(f'[cv.1]\nshape = "{shape}"\nrate = 3.0\nrange = [-1.0, 2.0]\n')
        values = [patch.cv_volts(0, i / 300) for i in range(300)]
        assert min(values) >= -1.0 - 1e-9 and max(values) <= 2.0 + 1e-9
        # Periodic at 3 Hz: one third of a second later, the same volts.
        assert all(math.isclose(patch.cv_volts(0, t), patch.cv_volts(0, t + 1 / 3),
                                abs_tol=1e-6) for t in (0.01, 0.1, 0.2))


def test_gate_clock_and_times():
    patch = _parse(PATCH)
    edges = [(round(e.t, 6), e.value) for e in patch.events(0.0, 2.0) if e.kind == "gate"
             and e.jack == 0]
    # 2 Hz from 0.1 s, 25 % duty (0.125 s high), no rise at or after 1.5 s.
    assert edges == [(0.1, True), (0.225, False), (0.6, True), (0.725, False),
                     (1.1, True), (1.225, False)]
    assert patch.gate_level(0, 0.15) and not patch.gate_level(0, 0.3)
    assert patch.gate_level(1, 1.1) and not patch.gate_level(1, 1.3)
    # Windows that split an edge neither lose nor repeat it.
    stepped = []
    for i in range(200):
        stepped += patch.events(i * 0.01, (i + 1) * 0.01)
    assert stepped == patch.events(0.0, 2.0)


def test_events_in_time_order():
    patch = _parse(PATCH)
    kinds = [(round(e.t, 3), e.kind, e.value) for e in patch.events(0.69, 1.05)]
    assert kinds == [(0.7, "gate", False), (0.725, "gate", False), (0.75, "press", "double"),
                     (1.0, "gate", True), (1.0, "turn", -2)]


@pytest.mark.parametrize("text, message", [
    ("[cv.0]\nvolts = 1.0\n", "cv.0: must be a jack number"),
    ("[cv.a]\nvolts = 1.0\n", "cv.a: must be a jack number"),
    ("[cv.1]\nvolts = 15.0\n", "cv.1.volts: 15.0 V is beyond the +-12 V rails"),
    ("[cv.1]\nshape = \"sin\"\nrate = 1.0\nrange = [0, 1]\n", "cv.1.shape: 'sin' is not one of"),
    ("[cv.1]\nshape = \"sine\"\nrange = [0, 1]\n", "cv.1.rate: missing"),
    ("[cv.1]\nshape = \"sine\"\nrate = 0\nrange = [0, 1]\n", "cv.1.rate: 0.0 Hz"),
    ("[cv.1]\nshape = \"sine\"\nrate = 1\nrange = [0]\n", "cv.1.range: must be [low, high]"),
    ("[cv.1]\nrate = 1\n", "cv.1: needs volts = V or shape"),
    ("[cv.1]\nvolts = 1\nrate = 2\n", "cv.1.rate: unknown key"),
    ("[gate.1]\nclock = 2\ntimes = [1]\n", "gate.1: needs either clock"),
    ("[gate.1]\nclock = 2\nduty = 1.0\n", "gate.1.duty"),
    ("[gate.2]\ntimes = [1.0, 1.01]\nlength = 0.1\n", "gate.2.times[1]: 1.01 comes before"),
    ("[gate.2]\ntimes = [-1.0]\n", "gate.2.times[0]"),
    ("[[encoder.turn]]\nat = 1.0\nsteps = 0\n", "encoder.turn[0].steps: must not be zero"),
    ("[[encoder.press]]\nat = 1.0\nkind = \"triple\"\n", "encoder.press[0].kind"),
    ("[[encoder.press]]\nkind = \"short\"\n", "encoder.press[0].at: missing"),
    ("seconds = -1\n", "seconds: -1.0: must be above 0"),
    ("[knob.1]\nvolts = 1\n", "knob: unknown key"),
])
def test_errors_name_the_key(text, message):
    with pytest.raises(PatchError) as caught:
        _parse(text)
    assert str(caught.value).startswith("p.toml: ")
    assert message in str(caught.value)


def test_patch_must_fit_the_board_and_files_load(tmp_path):
    patch = _parse("[cv.5]\nvolts = 1.0\n")
    with pytest.raises(PatchError, match="cv.5: the board has 4 CVs"):
        patch.check_fits(4, 2)
    path = tmp_path / "mine.toml"
    path.write_text(PATCH)
    assert load_patch(str(path)).source == "mine.toml"
    with pytest.raises(PatchError, match="no such patch file"):
        load_patch(str(tmp_path / "none.toml"))


@pytest.mark.parametrize("text, message", [
    # nan passes every bound (nan < 0 is False): each number is checked for being finite.
    ("seconds = nan\n", "seconds: nan is not a finite number"),
    ("seconds = inf\n", "seconds: inf is not a finite number"),
    ("[cv.1]\nvolts = nan\n", "cv.1.volts: nan is not a finite number"),
    ("[cv.1]\nshape = \"sine\"\nrate = nan\nrange = [0, 1]\n", "cv.1.rate: nan is not"),
    ("[cv.1]\nshape = \"sine\"\nrate = 1\nrange = [0, nan]\n", "cv.1.range: must be [low, high]"),
    ("[cv.1]\nshape = \"sine\"\nrate = 1\nrange = [-inf, 1]\n", "cv.1.range: must be"),
    ("[gate.1]\nclock = nan\n", "gate.1.clock: nan is not a finite number"),
    ("[gate.2]\ntimes = [nan]\n", "gate.2.times[0]: nan: must be a time"),
    ("[gate.2]\ntimes = [1.0, inf]\n", "gate.2.times[1]: inf: must be a time"),
    ("[[encoder.turn]]\nat = nan\nsteps = 1\n", "encoder.turn[0].at: nan is not"),
])
def test_non_finite_numbers_are_named(text, message):
    with pytest.raises(PatchError) as caught:
        _parse(text)
    assert str(caught.value).startswith("p.toml: ") and message in str(caught.value)


def test_a_patch_that_is_not_utf8_text_is_named(tmp_path):
    path = tmp_path / "binary.toml"
    path.write_bytes(b"seconds = 2\n\xab\xcd\xef garbage")
    with pytest.raises(PatchError, match=r"binary\.toml: not a TOML text file \(byte 12 is "
                                         r"not UTF-8\)"):
        load_patch(str(path))
    with pytest.raises(PatchError, match="is a folder"):
        load_patch(str(tmp_path))
