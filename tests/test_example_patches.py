"""The example patches (examples/patches/) rendered by the real render path (ONNX Runtime
on the bundled models, the real menu): each is audible, unclipped and does what its
comment says. Bad [settings] through the command line: one line, non-zero, nothing lost."""
import os
import re

import numpy as np
import pytest
import soundfile
from neurorave.common.toml_reader import tomllib
from neurorave.firmware.cli import main as cli_main
from neurorave.firmware.render import render
from neurorave.firmware.voice import LIMIT_KNEE
from neurorave.hardware.patch import load_patch, parse_patch
from neurorave.models.audibility import AUDIBLE_RMS
from neurorave.models.descriptors import compute

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples", "patches")
MODELS = os.path.join(ROOT, "models", "pretrained")
NAMES = sorted(n[:-5] for n in os.listdir(EXAMPLES) if n.endswith(".toml"))
HOP = 256
C3_HZ = 130.8128                  # 0 V in pitch mode


def _path(name):
    return os.path.join(EXAMPLES, name + ".toml")


def _toml(name):
    with open(_path(name), "rb") as handle:
        return tomllib.load(handle)


_rendered = {}


def _render(name, data=None, seconds=None):
    """(audio, rate) of an example, or of its TOML `data` changed; each rendered once."""
    key = (name, repr(data), seconds)
    if key not in _rendered:
        patch = load_patch(_path(name)) if data is None else parse_patch(data, name + ".toml")
        _rendered[key] = render(MODELS, patch, seconds or patch.seconds)
    return _rendered[key]


def _medians(curve, rms, sr, spans):
    """Median of a descriptor curve over the audible frames of each (t0, t1) span."""
    out = []
    for t0, t1 in spans:
        a, b = int(t0 * sr / HOP), int(t1 * sr / HOP)
        values = curve[a:b][rms[a:b] > 3 * AUDIBLE_RMS]
        out.append(float(np.median(values)) if values.size else float("nan"))
    return out


def test_there_are_the_six_musical_examples_and_each_says_what_it_plays():
    assert {"melody", "drums", "sweep", "macros", "phrases", "pinned"} <= set(NAMES)
    for name in NAMES:
        with open(_path(name)) as handle:
            first = handle.readline()
        model = _toml(name)["settings"]["model"]
        assert first.startswith("# ") and f"(bundle: {model})" in first, (name, first)
        assert os.path.isfile(os.path.join(MODELS, model, "model.json"))


@pytest.mark.parametrize("name", NAMES)
def test_each_example_is_audible_and_unclipped(name):
    audio, sr = _render(name)
    assert len(audio) == int(round(_toml(name)["seconds"] * sr))
    assert np.all(np.isfinite(audio))
    peak = float(np.abs(audio).max())
    # Unclipped: nothing near full scale, and the limiter bends (almost) nothing.
    assert peak < 0.95, peak
    assert np.mean(np.abs(audio) > LIMIT_KNEE) < 1e-4
    window = int(0.05 * sr)
    n = len(audio) // window
    rms = np.sqrt(np.mean(audio[:n * window].reshape(n, window).astype(np.float64) ** 2, 1))
    # Audible: its loud moments well above -40 dBFS, and most of it above -54 dBFS (the
    # drums decay between hits: the bundled gm-drums plays at -52 dBFS median).
    assert np.percentile(rms, 90) > 0.01 and np.median(rms) > 2 * AUDIBLE_RMS
    # No gap: drums fall silent between hits, but never for half a second.
    quiet = np.concatenate([[0], (rms < AUDIBLE_RMS).astype(int), [0]])
    edges = np.flatnonzero(np.diff(quiet))
    longest = max(np.diff(edges)[::2], default=0) * 0.05
    assert longest < 0.5, longest


def test_the_melody_follows_its_sequence_within_10_cents():
    data = _toml("melody")
    steps, rate = data["cv"]["4"]["steps"], data["cv"]["4"]["rate"]
    audio, sr = _render("melody")
    curves = compute(audio, sr, HOP, ["f0"])
    f0 = np.where(curves["voicing"] > 0.5, curves["f0"], np.nan)
    notes = int(data["seconds"] * rate)
    errors = []
    for k in range(notes):
        # The middle of each note: past the strike and the pitch smoothing.
        a, b = int((k + 0.3) / rate * sr / HOP), int((k + 0.8) / rate * sr / HOP)
        voiced = f0[a:b][np.isfinite(f0[a:b])]
        assert voiced.size > (b - a) // 2, f"note {k} is not voiced"
        target = C3_HZ * 2.0 ** steps[k % len(steps)]
        errors.append(1200.0 * np.log2(np.median(voiced) / target))
    print("melody cents:", np.round(errors, 2))
    assert np.max(np.abs(errors)) < 10.0, errors


def test_the_drums_hit_on_the_clock():
    import librosa

    data = _toml("drums")
    audio, sr = _render("drums")
    # Backtracked onsets: where each hit starts, not where its flux peaks.
    onsets = librosa.onset.onset_detect(y=audio, sr=sr, hop_length=64, units="time",
                                        backtrack=True)
    period = 1.0 / data["gate"]["1"]["clock"]
    # The first tick starts the render, under its fade-in: the others are judged.
    ticks = np.arange(period, data["seconds"] - 0.1, period)
    misses = [t for t in ticks if not np.any(np.abs(onsets - t) <= 0.03)]
    extra = [o for o in onsets if np.min(np.abs(np.arange(0, data["seconds"], period) - o))
             > 0.03]
    print(f"drums: {len(ticks) - len(misses)} of {len(ticks)} ticks hit within 30 ms, "
          f"{len(extra)} onsets off the clock")
    assert len(misses) <= 0.15 * len(ticks), misses
    assert len(extra) <= 0.2 * len(ticks), extra


def test_the_sweep_opens_from_dark_to_bright():
    audio, sr = _render("sweep")
    curves = compute(audio, sr, HOP, ["rms", "centroid"])
    per_second = _medians(curves["centroid"], curves["rms"], sr, [(t, t + 1) for t in range(8)])
    print("sweep centroid per second:", np.round(per_second))
    assert per_second[-1] > 2.0 * per_second[0]
    assert np.corrcoef(np.arange(8), per_second)[0, 1] > 0.9


def test_gate_2_steps_the_macro_through_its_snapshots():
    audio, sr = _render("macros")
    curves = compute(audio, sr, HOP, ["rms", "centroid"])
    # Snapshots at 0, 3 and 6 s, each reached after its 0.5 s glide.
    dark, bright, middle = _medians(curves["centroid"], curves["rms"], sr,
                                    [(0.5, 3.0), (3.5, 6.0), (6.5, 9.0)])
    print(f"macros centroid: dark {dark:.0f}, bright {bright:.0f}, middle {middle:.0f} Hz")
    assert 2.0 * dark < bright and dark < middle < bright


def test_pinned_attributes_hold_where_the_cvs_set_them():
    data = _toml("pinned")
    audio, sr = _render("pinned")
    curves = compute(audio, sr, HOP, ["rms", "centroid", "boominess"])
    # The same rhythm with the two CVs swapped: dark and boomy.
    swapped = _toml("pinned")
    swapped["cv"]["3"]["volts"], swapped["cv"]["4"]["volts"] = \
        data["cv"]["4"]["volts"], data["cv"]["3"]["volts"]
    other, _ = _render("pinned", swapped)
    other_curves = compute(other, sr, HOP, ["rms", "centroid", "boominess"])
    span = [(0.25, data["seconds"])]
    centroid = _medians(curves["centroid"], curves["rms"], sr, span)[0]
    boominess = _medians(curves["boominess"], curves["rms"], sr, span)[0]
    other_centroid = _medians(other_curves["centroid"], other_curves["rms"], sr, span)[0]
    other_boominess = _medians(other_curves["boominess"], other_curves["rms"], sr, span)[0]
    # Hold mode: +3 V is 80 % of the model's range (0 V its middle, +-5 V its ends).
    asked = 0.8 * 4509.08
    print(f"pinned centroid {centroid:.0f} Hz (asked {asked:.0f}), swapped {other_centroid:.0f};"
          f" boominess {boominess:.2f}, swapped {other_boominess:.2f}")
    assert abs(centroid - asked) < 0.2 * asked
    assert centroid > 2.0 * other_centroid and boominess < 0.8 * other_boominess


def test_the_encoder_in_a_patch_turns_the_output_level_down_through_the_menu():
    data = _toml("menu")
    audio, sr = _render("menu")
    quiet = dict(data)
    quiet.pop("encoder")
    plain, _ = _render("menu", quiet)
    at = int(4.0 * sr)
    assert np.array_equal(audio[:at], plain[:at])       # nothing before the menu is used
    later = slice(int(4.3 * sr), None)
    under = np.abs(plain[later]) < LIMIT_KNEE
    ratio = audio[later][under] / np.where(plain[later][under] == 0, 1, plain[later][under])
    loud = np.abs(plain[later][under]) > 0.01
    # 80 % -> 40 %: half the level, sample for sample (16-bit files are not involved).
    assert np.allclose(ratio[loud], 0.5, atol=1e-3)


def test_a_model_chosen_in_the_menu_plays_next(tmp_path):
    """The menu's Model page lists the folder's bundles (gm-drums first): choosing one
    swaps it in, as the daemon does (a fade out, then in)."""
    data = {"seconds": 3.0, "settings": {"model": "gm-notes"}, "gate": {"1": {"clock": 2.0}},
            "encoder": {"press": [{"at": 1.0}, {"at": 1.05}, {"at": 1.1}]}}
    swapped, sr = _render("model-choice", data)
    data.pop("encoder")
    notes, _ = _render("model-choice", data)
    data["settings"]["model"] = "gm-drums"
    drums, _ = _render("model-choice", data)
    at = int(1.1 * sr)
    assert np.array_equal(swapped[:at], notes[:at])
    assert not np.allclose(swapped[at:], notes[at:])
    assert np.abs(swapped[int(1.5 * sr):]).max() > 0.01 and np.abs(drums).max() > 0.01


def test_one_bundle_on_the_command_line_wins_over_the_patch_s_model(tmp_path, capsys):
    out = tmp_path / "drums-on-notes.wav"
    assert cli_main(["render", os.path.join(MODELS, "gm-notes"), "--patch", _path("drums"),
                     "--seconds", "0.5", "--out", str(out)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "names model gm-drums; playing gm-notes" in err[0]
    assert len(soundfile.read(str(out))[0]) == 8000


@pytest.mark.parametrize("settings, words", [
    ('cv_mode = "glide"', "settings.cv_mode: 'glide' is not one of slide, hold"),
    ("output_level = -1", "settings.output_level: -1.0: output_level must be a number >= 0"),
    ('model = "gm-notes"\n[settings.cv_assign]\ncv2 = "loudness"',
     "settings.cv_assign.cv2: 'loudness' is not an attribute of gm-notes"),
    ('model = "gm-drums"\n[settings.cv_assign]\ncv4 = "f0"',
     "settings.cv_assign.cv4: 'f0' is not an attribute of gm-drums"),
    ('model = "nosuch"', "settings.model: 'nosuch' is not in"),
    ('cv_mode = "hold"', "settings.model: missing; "),
    ('model = "gm-notes"\ncalibration = "exact"', "settings.calibration: 'exact' is not one of"),
    ('model = "gm-notes"\n[settings.calibration]\npitch_cv = 0', "pitch_cv: 0 is below"),
    ('model = "gm-notes"\nlevel = 0.5', "settings.level: unknown key"),
])
def test_bad_settings_are_one_line_and_lose_nothing(tmp_path, capsys, settings, words):
    patch = tmp_path / "bad.toml"
    patch.write_text(f"seconds = 1\n[gate.1]\nclock = 2.0\n[settings]\n{settings}\n")
    out = tmp_path / "take.wav"
    out.write_bytes(b"an earlier take")
    status = cli_main(["render", MODELS, "--patch", str(patch), "--out", str(out)])
    err = capsys.readouterr().err
    assert status != 0 and len(err.strip().splitlines()) == 1, err
    assert words in err and re.match(r"neurorave render: .*bad\.toml", err), err
    assert out.read_bytes() == b"an earlier take"        # nothing lost


@pytest.mark.parametrize("presses, turns, kind", [
    ([0.1, 0.2, 0.3], [(0.15, 6)], "Offsets (unpatched)"),
    ([0.1, 0.2, 0.3, 0.4], [(0.15, 6), (0.25, 1)], "1V/oct on CV1"),  # the last: 1 V
])
def test_a_calibration_capture_in_a_patch_is_refused_in_one_line(tmp_path, capsys, presses,
                                                                 turns, kind):
    """Main menu, Calibrate, then the item: render cannot capture readings offline."""
    text = ["seconds = 1", "[settings]", 'model = "gm-notes"']
    text += [f"[[encoder.press]]\nat = {t}" for t in presses]
    text += [f"[[encoder.turn]]\nat = {t}\nsteps = {s}" for t, s in turns]
    patch = tmp_path / "calibrate.toml"
    patch.write_text("\n".join(text) + "\n")
    status = cli_main(["render", MODELS, "--patch", str(patch), "--out",
                       str(tmp_path / "o.wav")])
    err = capsys.readouterr().err
    assert status != 0 and len(err.strip().splitlines()) == 1, err
    assert "starts a calibration capture" in err and "[settings.calibration]" in err
    assert not (tmp_path / "o.wav").exists()


def test_one_command_renders_every_example(tmp_path):
    import subprocess
    import sys

    neurorave = os.path.join(os.path.dirname(sys.executable), "neurorave")
    done = subprocess.run([os.path.join(ROOT, "tools", "render-examples.sh"), str(tmp_path)],
                          env=dict(os.environ, NEURORAVE=neurorave), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for name in NAMES:
        audio, rate = soundfile.read(str(tmp_path / f"{name}.wav"))
        assert rate == 16000 and len(audio) == int(round(_toml(name)["seconds"] * rate))
