"""A patch's [settings]: read with key-naming errors, checked by the settings file's own
validators, attribute names resolved against the model that plays; the calibration it
asks for; the daemon's settings for a run that plays it. No model runs here."""
import pytest
from neurorave.common.toml_reader import tomllib
from neurorave.firmware.calibration import CVCalibration, PitchCalibration
from neurorave.firmware.controls import ControlSettings
from neurorave.firmware.menu import ModelEntry
from neurorave.firmware.patch_settings import (
    calibration_for,
    for_run,
    overrides,
    read,
    settings_for,
)
from neurorave.firmware.state_files import default_settings, validate_settings
from neurorave.hardware.errors import PatchError
from neurorave.hardware.patch import parse_patch

NOTES = ("rms", "centroid", "bandwidth", "sharpness", "boominess", "f0")
DRUMS = NOTES[:5]


def _patch(text):
    return parse_patch(tomllib.loads(text), "p.toml")


def test_settings_are_carried_by_the_patch_as_plain_data():
    patch = _patch('[settings]\ncv_mode = "hold"\n[settings.cv_assign]\ncv2 = "rms"\n')
    assert patch.settings == {"cv_mode": "hold", "cv_assign": {"cv2": "rms"}}
    assert overrides(patch) and not overrides(_patch("[cv.1]\nvolts = 1.0\n"))


def test_settings_for_maps_names_and_keeps_the_rest_of_the_base():
    patch = _patch("""
[settings]
model = "gm-notes"
pitch_mode = true
cv_mode = "hold"
macro_mode = "snapshot"
macro_glide_s = 0.5
prior_temperature = 0.7
output_level = 0.6
[settings.cv_assign]
cv2 = "rms"
cv3 = "none"
cv4 = "f0"
[settings.attribute_ranges]
centroid = [0.2, 0.9]
[[settings.snapshots]]
centroid = 0.1
[[settings.snapshots]]
f0 = 1
""")
    base = default_settings()
    base["attribute_ranges"] = {"rms": [0.0, 0.5]}
    settings = settings_for(patch, base, NOTES, "gm-notes")
    validate_settings(settings)
    assert base == dict(default_settings(), attribute_ranges={"rms": [0.0, 0.5]})  # unchanged
    assert settings["cv_assign"] == {"cv2": 0, "cv3": None, "cv4": 5}
    assert settings["attribute_ranges"] == {"rms": [0.0, 0.5], "centroid": [0.2, 0.9]}
    assert settings["snapshots"] == [[0.5, 0.1, 0.5, 0.5, 0.5, 0.5], [0.5] * 5 + [1.0]]
    assert (settings["model"], settings["pitch_mode"], settings["cv_mode"]) == \
        ("gm-notes", True, "hold")
    assert (settings["macro_mode"], settings["macro_glide_s"], settings["prior_temperature"],
            settings["output_level"]) == ("snapshot", 0.5, 0.7, 0.6)
    controls = ControlSettings.from_settings(settings)
    assert controls.cv_assign == {"cv2": 0, "cv3": None, "cv4": 5} and controls.pitch_mode
    # A patch without [settings] leaves everything as it was.
    assert settings_for(_patch(""), base, NOTES) == base


def test_snapshots_as_the_file_holds_them_pass_as_they_are():
    patch = _patch("[settings]\nsnapshots = [[0.1, 0.2], [0.9]]\n")
    assert settings_for(patch, default_settings(), DRUMS)["snapshots"] == [[0.1, 0.2], [0.9]]


@pytest.mark.parametrize("text, words", [
    ('cv_mode = "glide"', "settings.cv_mode: 'glide' is not one of slide, hold"),
    ('gate_mode = "roll"', "settings.gate_mode: 'roll' is not one of phrase, hit"),
    ('macro_mode = "chaos"', "settings.macro_mode: 'chaos' is not one of"),
    ("macro_glide_s = -1", "settings.macro_glide_s: -1.0: macro_glide_s must be a number >= 0"),
    ("prior_temperature = -0.5", "settings.prior_temperature: -0.5: prior_temperature must"),
    ("output_level = -2", "settings.output_level: -2.0: output_level must be a number >= 0"),
    ("output_level = nan", "settings.output_level: nan is not a finite number"),
    ('pitch_mode = "yes"', "settings.pitch_mode: must be true or false"),
    ("model = 3", "settings.model: must be a string"),
    ("volume = 1", "settings.volume: unknown key"),
    ('calibration = "perfect"', "settings.calibration: 'perfect' is not one of ideal, module"),
    ("snapshots = [[0.5, 2.0]]", "settings.snapshots[0]: [0.5, 2.0]: a macro point"),
    ("snapshots = 0.5", "settings.snapshots: must be a list"),
    ('[settings.cv_assign]\ncv1 = "rms"', "settings.cv_assign.cv1: CV1 always moves latent 0"),
    ('[settings.cv_assign]\ncv5 = "rms"', "settings.cv_assign.cv5: unknown key"),
    ("[settings.cv_assign]\ncv2 = 1", "settings.cv_assign.cv2: must be a string"),
    ("[settings.attribute_ranges]\nrms = [0.8, 0.2]", "settings.attribute_ranges.rms: [0.8, 0.2]"),
    ("[settings.attribute_ranges]\nrms = [0, 2]", "fractions 0..1"),
    ("[settings.calibration]\npitch_cv = 5", "settings.calibration.pitch_cv: 5 is above the max"),
    ("[settings.calibration]\npitch_cv = 1\nsemitones_per_volt = 20",
     "settings.calibration.semitones_per_volt: 20.0 is above the maximum 15.0"),
    ("[settings.calibration]\npitch_cv = 1\nreading_at_1v = 2",
     "settings.calibration.reading_at_1v: 2.0 is above the maximum 1.5"),
    ("[settings.calibration]\nsemitones_per_volt = 12.2",
     "settings.calibration.pitch_cv: missing: which CV reads 1 V/oct"),
    ("[settings.calibration]\noffsets = [0, 0]", "settings.calibration.offsets: [0, 0]: must be 4"),
    ("[settings.calibration]\nscales = [1, 0, 1, 1]", "none zero"),
    ("[settings.calibration]\nslope = 1", "settings.calibration.slope: unknown key"),
])
def test_bad_settings_name_their_key(text, words):
    body = text if text.startswith("[settings.") else f"[settings]\n{text}"
    with pytest.raises(PatchError) as caught:
        read(_patch(body))
    message = str(caught.value)
    assert message.startswith("p.toml: settings") and words in message, message
    assert "\n" not in message


@pytest.mark.parametrize("text, words", [
    ('[settings.cv_assign]\ncv3 = "f0"', "settings.cv_assign.cv3: 'f0' is not an attribute of "
                                         "gm-drums (rms, centroid, bandwidth, sharpness, "
                                         "boominess)"),
    ("[settings.attribute_ranges]\npitch = [0, 1]", "settings.attribute_ranges.pitch: 'pitch'"),
    ("[[settings.snapshots]]\nf0 = 0.2", "settings.snapshots[0].f0: 'f0' is not an attribute"),
])
def test_attribute_names_the_model_lacks_are_refused(text, words):
    with pytest.raises(PatchError) as caught:
        settings_for(_patch(text), default_settings(), DRUMS, "gm-drums")
    assert words in str(caught.value)


def test_calibration_choices():
    stored = CVCalibration([0.1, 0, 0, 0], [1.0] * 4, PitchCalibration(2, 11.9, 1.05))
    current = CVCalibration([0.2, 0, 0, 0])

    def choose(text):
        return calibration_for(_patch(text), current, lambda: stored)

    assert choose("") is current
    assert choose('[settings]\ncalibration = "module"') is stored
    ideal = choose('[settings]\ncalibration = "ideal"')
    assert ideal.pitch is None and list(ideal.offsets) == [0.0] * 4
    explicit = choose("[settings.calibration]\npitch_cv = 4\nsemitones_per_volt = 12.1\n"
                      "offsets = [0.0, 0.01, 0.0, 0.0]\n")
    assert explicit.pitch.cv == 3 and explicit.pitch.semitones_per_volt == 12.1
    assert explicit.pitch.reading_at_1v == 1.0 and list(explicit.offsets) == [0, 0.01, 0, 0]
    assert explicit.pitch.semitones(1.0) == 12.0   # 1 V is an octave above 0 V


MODELS = [ModelEntry("/m/gm-drums", "gm-drums", 16000, DRUMS),
          ModelEntry("/m/gm-notes", "gm-notes", 16000, NOTES),
          ModelEntry("/m/broken", "broken", error="bad hash")]


def test_for_run_resolves_names_against_the_model_that_will_play():
    saved = dict(default_settings(), model="gm-drums")
    calibration = CVCalibration([0.1, 0, 0, 0])
    patch = _patch('[settings]\nmodel = "gm-notes"\n[settings.cv_assign]\ncv4 = "f0"\n')
    settings, cal = for_run(patch, saved, calibration, MODELS, "gm-notes", "/m")
    assert settings["model"] == "gm-notes" and settings["cv_assign"]["cv4"] == 5
    assert cal is calibration and saved["model"] == "gm-drums"   # the loaded dict is kept
    # No model in the patch: the settings' model names the attributes.
    settings, _ = for_run(_patch('[settings.cv_assign]\ncv2 = "boominess"\n'), saved,
                          calibration, MODELS, "gm-notes")
    assert settings["cv_assign"]["cv2"] == 4 and settings["model"] == "gm-drums"
    with pytest.raises(PatchError, match=r"cv4: 'f0' is not an attribute of gm-drums"):
        for_run(_patch('[settings.cv_assign]\ncv4 = "f0"\n'), saved, calibration, MODELS)
    for name in ("broken", "nosuch"):
        with pytest.raises(PatchError) as caught:
            for_run(_patch(f'[settings]\nmodel = "{name}"\n'), saved, calibration, MODELS,
                    folder="/m")
        assert str(caught.value) == (f"p.toml: settings.model: '{name}' is not in /m "
                                     f"(gm-drums, gm-notes)")
    # "module" is what the daemon loaded; "ideal" a perfect input.
    _, cal = for_run(_patch('[settings]\ncalibration = "module"\n'), saved, calibration, MODELS)
    assert cal is calibration
    _, cal = for_run(_patch('[settings]\ncalibration = "ideal"\n'), saved, calibration, MODELS)
    assert list(cal.offsets) == [0.0] * 4


def test_steps_play_a_sequence_of_volts():
    patch = _patch("[cv.4]\nsteps = [0.0, 0.25, 0.5]\nrate = 2.0\n"
                   "[cv.3]\nsteps = [1, 2]\nrate = 1.0\nloop = false\n")
    assert [patch.cv_volts(3, t) for t in (0.0, 0.49, 0.5, 1.0, 1.5, 2.0)] == \
        [0.0, 0.0, 0.25, 0.5, 0.0, 0.25]
    assert [patch.cv_volts(2, t) for t in (0.0, 1.0, 7.0)] == [1.0, 2.0, 2.0]


@pytest.mark.parametrize("text, words", [
    ("[cv.1]\nsteps = []\nrate = 1.0", "cv.1.steps: needs at least one value"),
    ('[cv.1]\nsteps = [0, "C4"]\nrate = 1.0', "cv.1.steps[1]: 'C4': must be a number of volts"),
    ("[cv.1]\nsteps = [0, 13]\nrate = 1.0", "cv.1.steps[1]: 13.0 V is beyond the +-12 V rails"),
    ("[cv.1]\nsteps = [0]", "cv.1.rate: missing"),
    ("[cv.1]\nsteps = [0]\nrate = 0", "cv.1.rate: 0.0 Hz: must be above 0"),
    ("[cv.1]\nsteps = [0]\nrate = 1\nrange = [0, 1]", "cv.1.range: unknown key"),
    ("settings = 3", "settings: must be a table"),
])
def test_bad_steps_and_settings_tables_name_their_key(text, words):
    with pytest.raises(PatchError) as caught:
        _patch(text)
    assert words in str(caught.value)
