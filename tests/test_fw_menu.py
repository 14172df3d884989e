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
        "Calibrate", "System"]


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


def test_cv_assignment_cycles_through_attributes_and_off():
    menu = make_menu()
    go_to(menu, "CV assign")
    assert menu.view().lines == ("CV2 rms", "CV3 centroid", "CV4 bandwidth", "Mode slide")
    menu.turn(2)
    seen = []
    for _ in range(len(ATTRS) + 1):
        assert menu.press() == [Action("settings_changed", "cv_assign")]
        seen.append(menu.view().lines[2])
    assert seen == ["CV4 sharpness", "CV4 boominess", "CV4 -", "CV4 rms", "CV4 centroid",
                    "CV4 bandwidth"]
    validate_settings(menu.settings)
    menu.turn(1)                                   # the CV mode: slide <-> hold
    assert menu.press() == [Action("settings_changed", "cv_mode")]
    assert menu.settings["cv_mode"] == "hold" and menu.view().lines[3] == "Mode hold"
    validate_settings(menu.settings)
    menu.press()
    assert menu.settings["cv_mode"] == "slide"


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


def test_list_screen_inverts_the_selected_line_and_scrolls():
    view = View("list", "Menu", tuple(MAIN), cursor=5)
    px = _pixels(screens.draw(view))
    assert px[:11].mean() > 0.5  # inverted title bar
    first = screens.visible_window(len(MAIN), 5)
    row = 5 - first + 1
    assert px[row * 11:(row + 1) * 11].mean() > 0.5  # the selected line is inverted
    other = 1 if row != 1 else 2
    assert px[other * 11:(other + 1) * 11].mean() < 0.3
    assert screens.visible_window(8, 0) == 0 and screens.visible_window(8, 7) == 4


def test_performance_bars_are_proportional():
    menu = make_menu()
    menu.set_performance(Performance("NSynth", (("rms", 0.0), ("cent", 0.5), ("band", 1.0)),
                                     "playing"))
    px = _pixels(screens.draw(menu.view()))
    fills = []
    for row in (0, 1, 2):
        top = screens.bar_top(row)
        band = px[top + 2: top + screens.BAR_ROW - 3, 31:126]  # inside the bar outline
        fills.append(band.mean())
    assert fills[0] < 0.05 and 0.4 < fills[1] < 0.6 and fills[2] > 0.95


def test_performance_page_fits_five_attributes_and_a_status():
    bars = tuple((name, 0.5) for name in ATTRS)
    view = Menu(default_settings(), MODELS, ATTRS)
    view.set_performance(Performance("NSynth", bars, "playing"))
    px = _pixels(screens.draw(view.view()))
    fifth = screens.bar_top(4)
    assert px[fifth + 2: fifth + screens.BAR_ROW - 3, 31:126].mean() > 0.4
    assert px[fifth + screens.BAR_ROW:, :].any()  # the status line under the bars


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
