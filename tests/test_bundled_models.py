"""The bundles a fresh module plays (models/pretrained): they load with their hashes, are
what their recipe says, carry the figures they were measured at, and play as the
module plays them: in tune, answering gates, never NaN, never clipping."""
import json
import os

import numpy as np
import pytest
from neurorave.firmware.calibration import CVCalibration
from neurorave.firmware.controls import ControlSettings
from neurorave.firmware.instrument_check import generation_check, pitch_accuracy
from neurorave.firmware.model_loading import DEFAULT_MODEL, default_models_folder
from neurorave.firmware.state_files import default_settings
from neurorave.firmware.voice import GATE_FADE_S, ControlInputs, VoiceModel, crossfade
from neurorave.models.config import load_config, save_config
from neurorave.models.runtime.bundle import load_bundle

BUNDLED = ["gm-notes", "gm-drums"]
MAX_BYTES = 20 * 1024 * 1024  # issue 10: each bundle at most 20 MB


def _folder(name):
    return os.path.join(default_models_folder(), name)


def _json(name, file):
    with open(os.path.join(_folder(name), file), encoding="utf-8") as f:
        return json.load(f)


def test_a_fresh_module_plays_the_harmonic_voice():
    assert DEFAULT_MODEL == "gm-notes"
    bundle = load_bundle(_folder(DEFAULT_MODEL))
    assert "f0" in [a.name for a in bundle.attributes]


@pytest.mark.parametrize("name", BUNDLED)
def test_each_bundle_loads_with_its_hashes_fits_and_has_a_prior(name):
    bundle = load_bundle(_folder(name))  # checks every graph's sha256
    assert bundle.name == name
    assert {"encoder", "decoder", "prior"} <= set(bundle.graphs)
    size = sum(os.path.getsize(os.path.join(_folder(name), f))
               for f in os.listdir(_folder(name)))
    assert size <= MAX_BYTES
    for record in ("config.json", "training.json", "metrics.json"):
        assert os.path.isfile(os.path.join(_folder(name), record))


@pytest.mark.parametrize("name", BUNDLED)
def test_each_bundle_was_built_from_its_recipe(name, tmp_path):
    """The run's configuration is the one in models/configs (but for its step count), so
    `make pretrained` rebuilds what is installed. A key added to the configuration
    since the run was made reads as its default (what the run's code did)."""
    save_config(load_config(name), tmp_path / "recipe.json")
    recipe = json.loads((tmp_path / "recipe.json").read_text())
    save_config(load_config(os.path.join(_folder(name), "config.json")),
                tmp_path / "installed.json")
    installed = json.loads((tmp_path / "installed.json").read_text())
    assert installed["training"]["steps"] == _json(name, "training.json")["frave"]["steps"]
    for entry in (recipe, installed):
        entry["training"].pop("steps")
    assert installed == recipe


@pytest.mark.parametrize("name", BUNDLED)
def test_the_recorded_figures_are_of_these_graphs_and_meet_the_goals(name):
    metrics = _json(name, "metrics.json")
    frave, twin = metrics["models"]
    model_json = _json(name, "model.json")
    assert frave["graphs"] == {role: g["sha256"] for role, g in model_json["graphs"].items()}
    assert (frave["variant"], twin["variant"]) == ("frave", "crave")
    by_size = frave["control"]["by_size"]
    assert by_size["1"]["corr"] >= 0.80
    assert min(by_size[k]["corr"] for k in ("2", "3", "4")) >= 0.75
    assert frave["reconstruction"]["mstft"]["mean"] \
        <= 1.10 * twin["reconstruction"]["mstft"]["mean"]
    played = frave["instrument"]
    assert played["pitch"]["available"] == ("f0" in frave["attributes"])
    if played["pitch"]["available"]:
        assert played["pitch"]["median_abs_cents"] <= 25
    generation = played["generation"]
    assert generation["seconds"] >= 600 and generation["ok"]


@pytest.mark.parametrize("name", BUNDLED)
def test_each_bundle_plays_its_prior_through_the_module_voice(name):
    """20 s of the evaluation's generation patch (a gate every 2 s), through the firmware's
    voice and the bundle's own prior in ONNX Runtime."""
    result = generation_check(_folder(name), 20.0, seed=3)
    assert result["mode"] == "prior"
    assert result["nan_at_s"] is None
    assert result["gates"] >= 9 and result["unanswered_gates"] == 0
    assert result["clipped_samples"] == 0
    assert result["rms_dbfs_median"] > -70  # it plays, not a whisper
    # A gate is answered at once (without the phrase lead gm-drums took 69 ms, p50).
    assert result["answer_ms"]["p50"] <= 20


@pytest.mark.parametrize("name", BUNDLED)
def test_a_gate_plays_its_phrase_from_the_call_after_the_lead(name):
    """With a lead of one call, what a gate plays is the second call of the phrase the
    same gate plays without a lead: the first runs unheard."""
    bundle = load_bundle(_folder(name))
    voices = []
    for lead in (1, 0):
        model = VoiceModel(_folder(name), bundle.sample_rate, "ort-cpu", 1, ControlSettings(),
                           CVCalibration(), seed=2)
        model.reset()
        assert model.phrase_lead == 1  # the bundles name none: the firmware's default
        model.phrase_lead = lead
        voices.append(model)
    led, plain = voices
    for model in voices:
        for _ in range(5):
            model.render(ControlInputs([0.0] * 4))
    heard = led.render(ControlInputs([0.0] * 4, True)).copy()
    first = plain.render(ControlInputs([0.0] * 4, True)).copy()
    second = plain.render(ControlInputs([0.0] * 4)).copy()
    n = int(GATE_FADE_S * bundle.sample_rate)
    np.testing.assert_array_equal(heard[n:], second[n:])
    # Its head is crossfaded from the unheard call, which joins what played before.
    np.testing.assert_allclose(heard[:n], crossfade(first[:n], second)[:n], atol=1e-7)


@pytest.mark.parametrize("name", BUNDLED)
def test_a_gate_never_clicks(name):
    """The sample step across each gate's call boundary is like the steps just before it
    (the unheard lead call left jumps of 16 (gm-notes) and 3.6 (gm-drums) times the
    local median step, median over gates; crossfaded: 1.3 and 0.6)."""
    bundle = load_bundle(_folder(name))
    model = VoiceModel(_folder(name), bundle.sample_rate, "ort-cpu", 1, ControlSettings(),
                       CVCalibration(), seed=4)
    model.reset()
    blocks = [model.render(ControlInputs([0.0] * 4, c % 8 == 3)).copy() for c in range(160)]
    audio = np.concatenate(blocks)
    starts = np.cumsum([len(b) for b in blocks])[:-1]
    ratios = []
    for c in range(3, 160, 8):
        g = starts[c - 1]
        local = np.median(np.abs(np.diff(audio[g - 160:g])))
        ratios.append(abs(audio[g] - audio[g - 1]) / max(local, 1e-9))
    assert np.median(ratios) <= 3.0, ratios


def _phrases(name, settings, seconds=6.0):
    """The voice as a fresh module runs it, nothing patched, gate 1 every 2 s: the audio
    and the rms it played per frame."""
    bundle = load_bundle(_folder(name))
    model = VoiceModel(_folder(name), bundle.sample_rate, "ort-cpu", 1,
                       ControlSettings.from_settings(settings), CVCalibration(), seed=5)
    model.reset()
    calls = int(seconds * bundle.sample_rate / model.samples_per_call)
    per_gate = int(2.0 * bundle.sample_rate / model.samples_per_call)
    audio, rms = [], []
    for c in range(calls):
        audio.append(model.render(ControlInputs([0.0] * 4, c % per_gate == 0, False, False)))
        rms.append(float(model.played[0]))
    return np.concatenate(audio), np.array(rms)


@pytest.mark.parametrize("name", BUNDLED)
def test_a_fresh_module_plays_the_priors_phrases_with_their_dynamics(name):
    """Default settings assign CV2..CV4; unpatched (0 V) in slide mode they leave the
    prior's phrases exactly as generated, with its envelopes; hold mode pins them."""
    defaults = default_settings()
    assert defaults["cv_mode"] == "slide" and defaults["cv_assign"]["cv2"] is not None
    audio, rms = _phrases(name, defaults)
    free, _ = _phrases(name, dict(defaults, cv_assign={"cv2": None, "cv3": None, "cv4": None}))
    assert np.array_equal(audio, free)
    loud = rms[rms > 0]
    assert 20 * np.log10(loud.max() / np.percentile(loud, 10)) > 10   # envelopes, not a drone
    _, held = _phrases(name, dict(defaults, cv_mode="hold"))
    assert np.ptp(held) < 1e-6                                         # the rms CV holds it


def test_the_harmonic_voice_plays_1v_per_octave_in_tune():
    result = pitch_accuracy(_folder("gm-notes"), seed=3)
    assert result["available"] and result["nan_at_s"] is None
    assert result["median_abs_cents"] <= 25
    assert result["unvoiced_notes"] <= 2
