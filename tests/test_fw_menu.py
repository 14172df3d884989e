"""The menu state machine and the screens it draws (128x64, 1 bit, through luma's device)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from neurorave.firmware import screens
from neurorave.firmware.menu import Action, Menu, ModelEntry, Performance, View
from neurorave.firmware.state_files import default_settings, validate_settings
from neurorave.hardware.interfaces import ButtonPress, EncoderStep

ATTRS = ["rms", "centroid", "bandwidth", "sharpness", "boominess"]
MODELS = [ModelEntry("nsynth", "NSynth", 48000, tuple(ATTRS)),
          ModelEntry("speech", "Speech", 16000, ("rms",)),
          ModelEntry("broken", "Broken", error="decoder.onnx: sha256 mismatch")]
MAIN = ["Model", "CV assign", "Ranges", "Macro", "Temperature", "Output level",
        "Calibrate", "System", "Gate 1: model's"]


def make_menu():
    return Menu(default_settings(), MODELS, ATTRS)


def go_to(menu, item):
    """From the performance page, open a main-menu item by turning to it."""
    menu.home()
    menu.press()
    menu.turn(-99)
    menu.turn(MAIN.index(item))
    return menu.press()


def test_home_is_the_performance_page_and_a_press_opens_the_menu():
    menu = make_menu()
    assert menu.view().kind == "performance" and menu.depth == 0
    menu.press()
    view = menu.view()
    assert view.kind == "list" and list(view.lines) == MAIN and view.cursor == 0
    menu.turn(100)
    assert menu.view().cursor == len(MAIN) - 1  # clamped, no wrap
    menu.press("long")
    assert menu.view().kind == "performance"


def test_gate_1_goes_from_the_models_choice_to_a_phrase_a_hit_a_note_and_back():
    menu = make_menu()
    seen = []
    for _ in range(4):
        assert go_to(menu, MAIN[-1]) == [Action("settings_changed", "gate_mode")]
        validate_settings(menu.settings)
        seen.append((menu.settings["gate_mode"], menu.view().lines[-1]))
    assert seen == [("phrase", "Gate 1: phrase"), ("hit", "Gate 1: hit"),
                    ("note", "Gate 1: note"), (None, "Gate 1: model's")]


def test_events_from_the_panel_drive_it():
    menu = make_menu()
    menu.handle(ButtonPress("short", 0))
    menu.handle(EncoderStep(2, 0))
    assert menu.view().cursor == 2
    menu.handle(ButtonPress("double", 0))
    assert menu.depth == 0


def test_model_selection_loads_in_the_background_and_refuses_a_broken_one():
    menu = make_menu()
    go_to(menu, "Model")
    view = menu.view()
    assert view.lines[0].endswith("NSynth 48k") and view.lines[2].startswith("!Broken")
    # The bottom line names the selected model's attributes, or why it cannot play.
    assert view.message == "rms cen bw shp bom"
    menu.turn(1)
    assert menu.view().message == "rms"
    menu.turn(1)
    assert "sha256 mismatch" in menu.view().message
    menu.turn(-2)
    menu.turn(2)
    assert menu.press() == []  # a broken bundle is explained, not loaded
    assert "sha256 mismatch" in menu.view().lines[0]
    menu.back()
    menu.turn(-1)
    actions = menu.press()
    assert actions == [Action("load_model", "speech"), Action("settings_changed", "model")]
    assert menu.settings["model"] == "speech" and menu.depth == 0
    go_to(menu, "Model")
    assert menu.view().lines[1].startswith("*Speech")
    # The * marks what plays: after a choice that gave way at start, not the choice.
    menu.back()
    menu.playing = "nsynth"
    go_to(menu, "Model")
    assert menu.view().lines[0].startswith("*NSynth") and menu.view().lines[1][0] == " "


def test_cv_assignment_picks_from_a_list_and_swaps_a_taken_attribute():
    menu = make_menu()
    go_to(menu, "CV assign")
    assert menu.view().lines == ("CV2 rms", "CV3 centroid", "CV4 bandwidth", "Mode slide")
    menu.turn(2)
    assert menu.press() == []                      # CV4's chooser, at what it drives
    view = menu.view()
    assert view.title == "CV4 assign" and view.lines[view.cursor] == "*bandwidth"
    assert view.lines[:3] == (" -", " rms (CV2)", " centroid (CV3)")   # who holds what
    menu.turn(1)
    assert menu.press() == [Action("settings_changed", "cv_assign")]    # sharpness: free
    assert menu.view().lines[2] == "CV4 sharpness" and menu.view().message == ""
    menu.press()
    menu.turn(-2)                                  # centroid, held by CV3: swapped
    assert menu.press() == [Action("settings_changed", "cv_assign")]
    assert menu.settings["cv_assign"] == {"cv2": 0, "cv3": 3, "cv4": 1}
    assert menu.view().message == "CV4 <-> CV3: centroid"
    assert menu.view().lines[:3] == ("CV2 rms", "CV3 sharpness", "CV4 centroid")
    menu.press()
    menu.turn(-99)                                 # "-": off, nothing to swap
    assert menu.press() == [Action("settings_changed", "cv_assign")]
    assert menu.settings["cv_assign"]["cv4"] is None and menu.view().message == ""
    menu.press()
    assert menu.press() == []                      # the same choice again: nothing
    validate_settings(menu.settings)
    menu.turn(1)                                   # the CV mode: slide <-> hold
    assert menu.press() == [Action("settings_changed", "cv_mode")]
    assert menu.settings["cv_mode"] == "hold" and menu.view().lines[3] == "Mode hold"
    validate_settings(menu.settings)
    menu.press()
    assert menu.settings["cv_mode"] == "slide"


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, len(ATTRS))), max_size=20))
def test_no_two_cvs_ever_hold_one_attribute(choices):
    menu = make_menu()
    for cv, choice in choices:
        go_to(menu, "CV assign")
        menu.turn(cv)
        menu.press()
        menu.turn(-99)
        menu.turn(choice)
        menu.press()
        held = [i for i in menu.settings["cv_assign"].values() if i is not None]
        assert len(held) == len(set(held))
        validate_settings(menu.settings)


def test_attribute_range_edits_low_then_high_and_keeps_them_ordered():
    menu = make_menu()
    go_to(menu, "Ranges")
    menu.turn(1)
    menu.press()  # centroid
    assert menu.turn(10) == [Action("settings_changed", "attribute_ranges")]
    menu.press()  # now the high end
    menu.turn(-100)  # cannot go below the low end
    assert menu.settings["attribute_ranges"]["centroid"] == [0.2, 0.2]
    menu.turn(5)
    menu.press()
    assert menu.settings["attribute_ranges"]["centroid"] == [0.2, 0.3]
    assert menu.view().lines[1] == "centroid 20-30%"
    assert "rms" not in menu.settings["attribute_ranges"]


def test_macro_mode_glide_and_snapshots():
    menu = make_menu()
    go_to(menu, "Macro")
    assert menu.view().lines[0] == "*Random point"
    menu.turn(2)
    assert menu.press() == [Action("settings_changed", "macro_mode")]
    assert menu.settings["macro_mode"] == "follow_cv4"
    assert menu.press() == []  # choosing the current mode again changes nothing
    menu.turn(1)
    menu.press()  # glide editor
    menu.turn(3)
    assert menu.settings["macro_glide_s"] == pytest.approx(0.4)
    menu.press()
    menu.turn(1)
    assert menu.press() == [Action("store_snapshot")]
    assert menu.view().message == "snapshot stored"
    menu.settings["snapshots"] = [[0.1, 0.2], [0.3, 0.4]]   # the daemon appends them
    menu.turn(1)
    assert menu.press() == [] and menu.view().title == "Clear 2?"   # asks first
    assert menu.press() == [] and len(menu.settings["snapshots"]) == 2  # "Keep them"
    assert menu.view().title == "Macro"
    menu.press()
    menu.turn(1)
    assert menu.press() == [Action("settings_changed", "snapshots")]  # "Clear them"
    assert menu.settings["snapshots"] == [] and menu.view().message == "snapshots cleared"
    assert menu.press() == [] and menu.view().title == "Macro"   # nothing left to clear


@pytest.mark.parametrize("item,key,low,high", [("Temperature", "prior_temperature", 0.0, 2.0),
                                               ("Output level", "output_level", 0.0, 1.0)])
def test_value_pages_clamp_and_report_each_change(item, key, low, high):
    menu = make_menu()
    go_to(menu, item)
    assert menu.view().kind == "value"
    assert menu.turn(1000) == [Action("settings_changed", key)]
    assert menu.settings[key] == high and menu.view().value == pytest.approx(1.0)
    assert menu.turn(1) == []  # already at the top: nothing changed, nothing to save
    menu.turn(-1000)
    assert menu.settings[key] == low
    menu.press()
    assert menu.view().kind == "list"


def test_calibration_wizard_through_the_menu():
    menu = make_menu()
    go_to(menu, "Calibrate")
    assert menu.press() == [Action("calibrate_offsets")]
    menu.turn(2)  # 1V/oct on CV2
    menu.press()
    assert menu.view().kind == "wizard" and "1.000 V" in menu.view().lines[0]
    assert menu.press() == [Action("capture_pitch", 1)]
    assert menu.pitch_captured([2.0, 2.0]) == []  # refused: not 1 V
    assert "not 1 V" in menu.view().message
    menu.pitch_captured([1.01] * 4)
    assert "3.000 V" in menu.view().lines[0]
    actions = menu.pitch_captured([3.02] * 4)
    assert len(actions) == 1 and actions[0].kind == "pitch_calibrated"
    assert actions[0].value.cv == 1
    assert actions[0].value.semitones_per_volt == pytest.approx(24 / 2.01)
    menu.press()  # done: back to the list
    menu.turn(10)
    assert menu.press() == [Action("settings_changed", "pitch_mode")]
    assert menu.settings["pitch_mode"] is True


def test_redraw_only_when_something_changed():
    menu = make_menu()
    assert menu.take_changed() and not menu.take_changed()
    menu.set_performance(Performance("NSynth", (("rms", 0.5),), "playing"))
    assert menu.take_changed()
    menu.set_performance(Performance("NSynth", (("rms", 0.5),), "playing"))
    assert not menu.take_changed()
    menu.press()
    menu.take_changed()
    menu.set_performance(Performance("NSynth", (("rms", 0.9),), "playing"))
    assert not menu.take_changed()  # not on screen
    menu.turn(0)
    assert not menu.take_changed()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.integers(-5, 5).map(lambda s: ("turn", s)),
                          st.sampled_from(["short", "long", "double"]).map(lambda k: ("press", k))),
                max_size=60))
def test_any_gesture_sequence_keeps_valid_settings_and_draws(gestures):
    menu = make_menu()
    for kind, arg in gestures:
        actions = menu.turn(arg) if kind == "turn" else menu.press(arg)
        for action in actions:
            if action.kind == "capture_pitch":
                menu.pitch_captured([1.0, 1.0])
        image = screens.draw(menu.view())
        assert image.size == (128, 64) and image.mode == "1"
    validate_settings(menu.settings)


# ---- screens ---------------------------------------------------------------------------
def _pixels(image):
    return np.array(image, dtype=bool)


def test_the_cursor_looks_unlike_the_title():
    view = View("list", "Menu", tuple(MAIN), cursor=5)
    px = _pixels(screens.draw(view))
    assert px[:11].mean() > 0.5  # the title: a filled bar
    first = screens.visible_window(len(MAIN), 5)
    row = 5 - first + 1
    selected = px[row * 11:(row + 1) * 11]
    # The cursor: an outline (lit edges, dark inside) and a '>' before the text.
    assert selected[0].all() and selected[-1].all() and selected[:, 0].all()
    assert selected[1:-1, 1:-1].mean() < 0.3
    assert selected[2:9, 2:7].any()              # the marker
    other = 1 if row != 1 else 2
    assert not px[other * 11:(other + 1) * 11, 0:7].any()   # no marker, no outline
    assert screens.visible_window(8, 0) == 0 and screens.visible_window(8, 7) == 4


class _Attribute:
    def __init__(self, name, low, high, unit=""):
        self.name, self.min, self.max, self.unit = name, low, high, unit


GM = [_Attribute("rms", 0.0, 0.3), _Attribute("centroid", 0.0, 4000.0, "Hz"),
      _Attribute("bandwidth", 0.0, 2600.0, "Hz"), _Attribute("sharpness", 0.0, 2.7, "acum"),
      _Attribute("boominess", 0.0, 14.0), _Attribute("f0", 0.0, 2667.0, "Hz")]


def _gm_menu(pitch=False, played=(0.0, 2000.0, 2600.0, 1.0, 3.0, 220.0)):
    settings = default_settings()
    settings["pitch_mode"] = pitch
    menu = Menu(settings, MODELS, [a.name for a in GM])
    menu.set_performance(Performance.of("gm-notes", played, GM, "playing"))
    return menu


def _bar_fill(px, row):
    top = screens.bar_top(row)
    return px[top + 2: top + screens.BAR_ROW - 3, screens.BAR_X + 2:126].mean()


def test_performance_page_shows_each_cv_its_assignment_and_value():
    menu = _gm_menu()
    menu.set_volts([1.5, -2.26, 0.0, 5.0])
    meters = menu.view().meters
    assert [(m.label, m.name, m.text) for m in meters] == [
        ("1", "lat0", "+1.5V"), ("2", "rms", "-2.3V"), ("3", "cen", "+0.0V"),
        ("4", "bw", "+5.0V")]
    # CV1's bar is its volts, from the middle; CV2-4's, the attribute as it plays.
    assert meters[0].centred and meters[0].fraction == pytest.approx(0.65)
    assert meters[1].fraction == 0.0 and meters[2].fraction == 0.5 and meters[3].fraction == 1
    px = _pixels(screens.draw(menu.view()))
    assert _bar_fill(px, 1) < 0.05 and 0.4 < _bar_fill(px, 2) < 0.6 and _bar_fill(px, 3) > 0.95
    assert menu.view().status == "playing" and menu.view().message == ""
    # An unassigned CV says so, and shows its volts.
    menu.settings["cv_assign"]["cv3"] = None
    assert menu.view().meters[2][:3] == ("3", "-", "+0.0V") and menu.view().meters[2].centred


def test_pitch_mode_adds_an_f0_bar_with_the_note():
    menu = _gm_menu(pitch=True)
    meters = menu.view().meters
    assert len(meters) == 5 and meters[4][:3] == ("f0", "A3", "220Hz")
    low = menu.view().meters[4].fraction
    menu.set_performance(Performance.of("gm-notes", (0, 0, 0, 0, 0, 880.0), GM, "playing"))
    high = menu.view().meters[4]
    assert high.name == "A5" and high.fraction - low == pytest.approx(2 / np.log2(4186 / 27.5))
    px = _pixels(screens.draw(menu.view()))
    assert _bar_fill(px, 4) > 0.3                  # drawn under the four CVs
    # A model without f0 says so rather than showing an empty bar.
    no_f0 = Menu(dict(default_settings(), pitch_mode=True), MODELS, ATTRS)
    assert no_f0.view().meters[4][:3] == ("f0", "none", "in model")


def test_a_turn_on_the_performance_page_shows_every_attribute():
    menu = _gm_menu()
    assert menu.turn(1) == [] and menu.depth == 0
    meters = menu.view().meters
    assert [(m.name, m.text) for m in meters] == [
        ("rms", "0.00"), ("cen", "2.0kHz"), ("bw", "2.6kHz"), ("shp", "1.00"),
        ("bom", "3.00"), ("A3", "220Hz")]
    px = _pixels(screens.draw(menu.view()))
    assert _bar_fill(px, 5) > 0.3                  # all six fit with the status in the title
    menu.turn(1)
    assert menu.view().meters[0].name == "lat0"


def test_notes_and_values_read_short():
    from neurorave.firmware.menu import note_name, value_text

    assert [note_name(hz) for hz in (440.0, 261.63, 27.5, 4186.0, 0.0)] == [
        "A4", "C4", "A0", "C8", "-"]
    assert [value_text(v, u) for v, u in ((1830.0, "Hz"), (99.4, "Hz"), (0.1234, ""),
                                          (13.8, ""), (-23.4, "dB"))] == [
        "1.8kHz", "99Hz", "0.12", "13.8", "-23dB"]


def test_volts_redraw_only_when_the_shown_value_changes():
    menu = _gm_menu()
    menu.take_changed()
    menu.set_volts([1.51, 0.0, 0.0, 0.0])
    assert menu.take_changed()
    menu.set_volts([1.53, 0.01, -0.02, 0.0])          # ADC noise: the same on screen
    assert not menu.take_changed()
    menu.press()
    menu.take_changed()
    menu.set_volts([3.0, 0.0, 0.0, 0.0])
    assert not menu.take_changed()                    # not on screen


def test_cv_labels_for_the_virtual_knobs():
    menu = _gm_menu()
    menu.settings["cv_assign"] = {"cv2": 1, "cv3": 5, "cv4": None}
    assert menu.cv_labels() == [("latent 0", ""), ("centroid", "2.0kHz"), ("f0", "A3 220Hz"),
                                ("-", "")]


def test_each_detent_moves_a_cursor_once_and_values_speed_up_only_when_spun():
    menu = make_menu()
    menu.press()
    ms = 1_000_000
    for i in range(5):                         # five detents 5 ms apart: a fast flick
        menu.handle(EncoderStep(1, i * 5 * ms))
    assert menu.view().cursor == 5
    go_to(menu, "Output level")
    level = menu.settings["output_level"]
    for i in range(5):                         # slow: one step a detent
        menu.handle(EncoderStep(-1, 10_000 * ms + i * 200 * ms))
    assert menu.settings["output_level"] == pytest.approx(level - 5 * 0.02)
    for i in range(5):                         # spun: further
        menu.handle(EncoderStep(-1, 20_000 * ms + i * 5 * ms))
    assert menu.settings["output_level"] < level - 10 * 0.02
    menu.accelerate = False                    # the board's acceleration = false
    menu.handle(EncoderStep(1, 30_000 * ms))
    before = menu.settings["output_level"]
    for i in range(5):
        menu.handle(EncoderStep(1, 30_000 * ms + (i + 1) * 5 * ms))
    assert menu.settings["output_level"] == pytest.approx(before + 5 * 0.02)


def test_long_text_is_cut_to_the_width():
    image = screens.draw(View("info", "x" * 80, ("y" * 80,)))
    assert image.size == (128, 64)
    assert screens._fit("a" * 30).endswith("~") and len(screens._fit("a" * 30)) == screens.CHARS


def test_screen_goes_through_luma_device():
    # The display driver shows our image through luma.core: check it takes it as is.
    from luma.core.device import dummy

    device = dummy(width=128, height=64, mode="1")
    image = screens.draw(make_menu().view())
    device.display(image)
    assert np.array_equal(np.array(device.image), np.array(image))


def test_readme_screenshots_come_from_luma(tmp_path):
    import importlib.util
    import os

    path = os.path.join(os.path.dirname(__file__), "..", "tools", "screenshots.py")
    spec = importlib.util.spec_from_file_location("screenshots", path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.main(["--out", str(tmp_path)]) == 0
    from PIL import Image
    names = sorted(os.listdir(tmp_path))
    assert "performance.png" in names and "cv-assign-swapped.png" in names
    for name in names:
        with Image.open(tmp_path / name) as shot:
            assert shot.size == ((460, 520) if name == "virtual-panel.png" else (512, 256))
