"""`neurorave evaluate`: reconstruction, the paper's control protocol, the disentanglement
probe, metrics.json and a report page that really opens in headless Chromium."""
import json
import shutil
import time

import numpy as np
import pytest
import torch
from neurorave.firmware.cli import main as cli_main
from neurorave.firmware.instrument_check import (
    answer_delays,
    gate_answers,
    generation_check,
    pitch_accuracy,
)
from neurorave.firmware.voice import LIMIT_KNEE
from neurorave.models.datastore import write_dataset
from neurorave.models.descriptors_torch import compute_batch
from neurorave.models.evaluation.control import (
    attribute_sets,
    pearson01,
    run_control,
    synthetic,
)
from neurorave.models.evaluation.disentanglement import probe_accuracy
from neurorave.models.evaluation.synth import Synth
from neurorave.models.export.command import export_run
from neurorave.models.training.cli import train
from toy_bundle import write_oscillator_bundle

SR = 16000


def _tones(n, length, seed):
    """Tones with a moving loudness and pitch, so every curve has something to follow."""
    rng = np.random.default_rng(seed)
    t = np.arange(length) / SR
    rows = []
    for _ in range(n):
        f = rng.uniform(150, 1500) * (1 + 0.3 * t / t[-1])
        env = 0.1 + 0.6 * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(1, 4) * t))
        rows.append(env * np.sin(2 * np.pi * np.cumsum(f) / SR)
                    + 0.02 * rng.standard_normal(length))
    return np.array(rows, dtype=np.float32)


# Tiny nets run faster on one thread, and the machine is shared.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """An F-RAVE bundle and its C-RAVE twin (a run), trained alike on the same data."""
    root = tmp_path_factory.mktemp("evaluate")
    data = write_dataset(root / "data", _tones(40, 4096, 0), SR, [f"s{i}" for i in range(40)])
    torch.set_num_threads(1)
    train("tiny", str(data), str(root / "frave"), steps=12, progress=False)
    train("tiny-crave", str(data), str(root / "crave"), steps=12, progress=False)
    export_run(str(root / "frave"), str(root / "bundle"))
    return root


@pytest.fixture(scope="module")
def report(models):
    out = models / "report"
    status = cli_main(["evaluate", str(models / "bundle"), "--data", str(models / "data"),
                       "--out", str(out), "--limit", "3", "--compare", str(models / "crave"),
                       "--play-seconds", "5"])
    assert status == 0
    return out


def test_metrics_hold_every_measurement_for_both_models(report, models):
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["data"]["split"] == "test" and metrics["data"]["items"] == 3
    assert metrics["paper"]["control_corr_by_size"]["F-RAVE"]["1"] == 0.83
    bundle, run = metrics["models"]
    assert (bundle["variant"], run["variant"]) == ("frave", "crave")
    assert "bundle (ort-cpu" in bundle["kind"] and "torch" in run["kind"]
    for m in (bundle, run):
        names = m["attributes"]
        r = m["reconstruction"]
        assert len(r["mstft"]["items"]) == 3 and r["mstft"]["mean"] > 0
        assert r["mel_l1"]["mean"] > 0 and r["perceptual"]["available"] is False
        assert set(r["attribute_corr"]) == set(names)
        c = m["control"]
        assert set(c["single"]) == set(names)
        for name in names:
            assert set(c["single"][name]["modulators"]) == {"other", "ramp_up", "ramp_down",
                                                            "sine", "sawtooth", "mean"}
            score = c["single"][name]["all"]
            assert 0 <= score["corr"] <= 1 and score["l1"] >= 0 and score["leak_l1"] >= 0
        assert set(c["by_size"]) == {"1", "2", "3", "4"}
        for size in ("2", "3", "4"):
            sets = c["by_size"][size]["sets"]
            assert sets and all(len(s["attributes"]) == int(size) for s in sets)
        d = m["disentanglement"]
        assert d["chance"] == pytest.approx(1 / 16) and 0 <= d["accuracy"] <= 1
        assert set(d["attributes"]) == set(names)
    # The bundle is also played as the module plays it; a run (torch) is not.
    played = bundle["instrument"]
    assert played["pitch"] == {"available": False, "why": "the model has no f0 attribute"}
    assert played["generation"]["seconds"] == pytest.approx(5.0, abs=0.1)
    assert played["generation"]["nan_at_s"] is None and "instrument" not in run
    # The figures name the graphs they were measured on (a run has no graphs).
    model_json = json.loads((models / "bundle" / "model.json").read_text())
    assert bundle["graphs"] == {role: g["sha256"] for role, g in model_json["graphs"].items()}
    assert "graphs" not in run


def test_the_bundle_and_its_checkpoint_measure_alike(models, tmp_path):
    """The same model through ONNX Runtime (streamed) and torch (whole chunks)."""
    status = cli_main(["evaluate", str(models / "frave"), "--data", str(models / "data"),
                       "--out", str(tmp_path), "--limit", "2", "--compare",
                       str(models / "bundle"), "--play-seconds", "2"])
    assert status == 0
    run, bundle = json.loads((tmp_path / "metrics.json").read_text())["models"]
    # Same weights, same curves; only the noise generator differs between the two paths,
    # and the bundle's z are PCA coordinates.
    assert bundle["reconstruction"]["mstft"]["mean"] == pytest.approx(
        run["reconstruction"]["mstft"]["mean"], rel=0.15)


class ToneSynth(Synth):
    """A 'model' that obeys its rms curve exactly and ignores the rest: the protocol must
    give rms a high control score, the others chance, and no leak."""

    name, variant, kind = "tone", "oracle", "numpy"
    sample_rate, hop, step = SR, 256, 256
    attributes = ["rms", "centroid"]
    attr_min = np.array([0.0, 0.0])
    attr_max = np.array([0.5, 4000.0])

    def decode(self, z, raw_curves, seed=0):
        frames = raw_curves.shape[-1]
        t = np.arange(frames * self.hop)
        centres = (np.arange(frames) + 0.5) * self.hop
        out = np.zeros((len(z), len(t)), np.float32)
        for i in range(len(z)):
            amp = np.interp(t, centres, raw_curves[i, 0]) * np.sqrt(2)
            out[i] = amp * np.sin(2 * np.pi * 440 * t / self.sample_rate)
        return out


def test_the_control_protocol_scores_an_obeyed_curve_high_and_an_ignored_one_at_chance():
    synth = ToneSynth()
    rng = np.random.default_rng(0)
    frames = 64
    raw = np.stack([np.stack([0.05 + 0.25 * rng.random() * (1 + np.sin(np.arange(frames) / 5
                                                                      + i)),
                              np.full(frames, 440.0)]) for i in range(4)])
    audio = synth.decode(np.zeros((4, 1, frames)), raw)
    curves = synth.normalise(synth.describe(audio))
    result = run_control(synth, np.zeros((4, 1, frames)), curves, curves, seed=1)["metrics"]
    single = result["single"]
    assert single["rms"]["all"]["corr"] > 0.95
    # Chance is 0.5; the flat centroid wobbles a little with the amplitude.
    assert single["centroid"]["all"]["corr"] < 0.75
    # Changing the centroid moves nothing (the synth ignores it): no leak into rms.
    assert single["centroid"]["all"]["leak_l1"] < 0.02
    assert result["by_size"]["1"]["corr"] == pytest.approx(
        (single["rms"]["all"]["corr"] + single["centroid"]["all"]["corr"]) / 2)


def test_spectral_attributes_are_scored_where_sound_is_asked_for_and_rms_everywhere():
    from neurorave.models.evaluation.control import _score
    frames = 20
    target = np.linspace(-1, 1, frames)[None, None, :].repeat(2, 0)  # [2 items, 1 attr, F]
    measured = target.copy()
    measured[:, :, 12:] = -1.0  # the descriptor of silence: a convention, not a reading
    changed = np.ones((2, 1), bool)
    heard = np.zeros((2, frames), bool)
    heard[:, :12] = True
    score = _score(measured, target, target, changed, heard)
    assert score["corr"] == pytest.approx(1.0) and score["l1"] == pytest.approx(0.0)
    assert score["corr_all_frames"] < 0.95
    # rms is scored on every frame: silence is a real rms.
    as_rms = _score(measured, target, target, changed, heard, everywhere=[0])
    assert as_rms["corr"] == pytest.approx(as_rms["corr_all_frames"])
    assert as_rms["corr"] < 0.95
    # Without a mask both read the same; an item asked to be silent gives no reading.
    plain = _score(measured, target, target, changed)
    assert plain["corr_all_frames"] == pytest.approx(plain["corr"])
    heard[1] = False
    assert _score(measured, target, target, changed, heard)["corr"] == pytest.approx(1.0)


def test_modulator_ranges_come_from_audible_frames_except_for_rms():
    from neurorave.models.evaluation.control import run_control

    class Echo:
        """Plays the asked curves back as its measurement (a perfect, silent-free model)."""
        attributes = ["rms", "centroid"]
        attr_min, attr_max = np.array([0.0, 0.0]), np.array([1.0, 1000.0])

        span = (attr_max - attr_min)[:, None]

        def denormalise(self, norm):
            return self.attr_min[:, None] + (norm + 1) / 2 * self.span

        def normalise(self, raw):
            return np.clip(2 * (raw - self.attr_min[:, None]) / self.span - 1, -1, 1)

        def decode(self, z, raw, seed=0):
            return raw

        def describe(self, audio):
            return audio

    n, frames = 6, 32
    curves = np.zeros((n, 2, frames))
    curves[:, 0, :16], curves[:, 0, 16:] = 0.0, -1.0      # loud, then silent (rms 0)
    curves[:, 1, :16], curves[:, 1, 16:] = 0.4, -1.0      # bright, then 0 Hz (silence)
    audible = np.zeros((n, frames), bool)
    audible[:, :16] = True
    out = run_control(Echo(), np.zeros((n, 1, frames)), curves, curves, audible=audible)
    ranges = out["metrics"]["modulator_range_norm"]
    assert ranges["rms"] == pytest.approx([-1.0, 0.0])
    assert ranges["centroid"] == pytest.approx([0.4, 0.4])  # never the silence convention


def test_modulators_and_the_score():
    up = synthetic("ramp_up", 10, -0.5, 0.5)
    assert up[0] == pytest.approx(-0.5) and up[-1] == pytest.approx(0.5)
    assert np.all(np.diff(synthetic("ramp_down", 10, -1, 1)) < 0)
    assert pearson01(up, up) == pytest.approx(1.0)
    assert pearson01(up, -up) == pytest.approx(0.0)
    assert pearson01(up, np.ones(10)) == 0.5  # a flat curve follows nothing


def test_attribute_sets_are_distinct_and_the_same_for_every_model_of_a_seed():
    # Seed 0 once drew the same pair twice among 4 of 6 attributes.
    sets = attribute_sets(np.random.default_rng(0), 6, 2, 8)
    assert len(sets) == 8 and len({tuple(s) for s in sets}) == 8
    assert all(len(s) == 2 and s == sorted(s) and len(set(s)) == 2 for s in sets)
    assert sets == attribute_sets(np.random.default_rng(0), 6, 2, 8)
    assert len(attribute_sets(np.random.default_rng(1), 5, 4, 8)) == 5  # only 5 exist
    assert attribute_sets(np.random.default_rng(1), 3, 4, 8) == []


def test_the_probe_finds_attributes_in_z_when_they_are_there():
    rng = np.random.default_rng(0)
    curves = rng.standard_normal((48, 2, 32)).cumsum(-1)
    carrying = np.concatenate([curves, rng.standard_normal((48, 2, 32))], 1)
    blind = rng.standard_normal((48, 4, 32))
    seen = probe_accuracy(carrying[:32], curves[:32], carrying[32:], curves[32:], ["a", "b"])
    unseen = probe_accuracy(blind[:32], curves[:32], blind[32:], curves[32:], ["a", "b"])
    assert seen["accuracy"] > 3 * seen["chance"]
    assert unseen["accuracy"] < 2 * unseen["chance"]


def test_the_report_opens_in_headless_chromium(report, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    assert chromium and driver_path, "make test installs chromium and chromium-driver"
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,2400"):
        options.add_argument(arg)
    options.binary_location = chromium
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        browser.get((report / "report.html").resolve().as_uri())
        deadline = time.monotonic() + 30
        while True:
            audio = browser.execute_script(
                "return Array.from(document.querySelectorAll('audio')).map("
                "a => [a.readyState, a.error ? a.error.code : 0, a.duration])")
            if all(a[0] >= 1 or a[1] for a in audio) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        images = browser.execute_script(
            "return Array.from(document.images).map(i => [i.complete, i.naturalWidth])")
        headings = browser.execute_script(
            "return Array.from(document.querySelectorAll('h2')).map(h => h.textContent)")
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        shot = tmp_path / "report.png"
        assert browser.save_screenshot(str(shot))
    finally:
        browser.quit()
    assert not errors, errors
    # Originals and both models' reconstructions, and the control examples.
    assert len(audio) >= 9
    for ready, error, duration in audio:
        assert error == 0 and ready >= 1 and duration > 0.1
    assert len(images) >= 4 and all(done and width > 100 for done, width in images)
    assert shot.stat().st_size > 20000
    assert "Played as the module plays it" in headings  # the bundle's instrument checks


@pytest.mark.parametrize("argv, words", [
    (["evaluate", "{root}/bundle", "--data", "{root}/data", "--out", "{root}/x", "--limit", "1"],
     "--limit"),
    (["evaluate", "{root}/nothing", "--data", "{root}/data", "--out", "{root}/x"], "no such"),
    (["evaluate", "{root}/data", "--data", "{root}/data", "--out", "{root}/x"],
     "neither a model bundle"),
    (["evaluate", "{root}/bundle", "--data", "{root}/bundle", "--out", "{root}/x"], "bundle"),
    (["evaluate", "{root}/bundle", "--data", "{root}/data22", "--out", "{root}/x"], "Hz"),
    (["evaluate", "{root}/crave", "--data", "{root}/data", "--out", "{root}/x", "--device",
      "cuda"], "CUDA"),
])
def test_bad_evaluate_requests_are_one_line(models, capsys, argv, words):
    if not (models / "data22").exists():
        write_dataset(models / "data22", _tones(6, 4096, 1), 22050, [f"t{i}" for i in range(6)])
    if "cuda" in argv and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    status = cli_main([a.format(root=models) for a in argv])
    err = capsys.readouterr().err
    assert status != 0 and words in err and len(err.strip().splitlines()) == 1, err


def test_describe_matches_the_training_descriptors():
    """The evaluator measures with the same descriptors the model was trained on."""
    synth = ToneSynth()
    audio = _tones(2, 4096, 5)
    expected = compute_batch(torch.from_numpy(audio), SR, 256, ["rms", "centroid"],
                             dtype=torch.float64).numpy()
    assert np.allclose(synth.describe(audio), expected, atol=1e-5)


def test_pitch_accuracy_of_an_ideal_voice_and_of_one_that_ignores_f0(tmp_path):
    """1 V/oct through the daemon's voice: a sine at the asked f0 is within a few cents
    over three octaves; one stuck at 440 Hz is off by semitones."""
    ideal = pitch_accuracy(write_oscillator_bundle(str(tmp_path / "ideal")))
    assert ideal["available"] and ideal["octaves"] == 3 and len(ideal["notes"]) == 37
    assert ideal["median_abs_cents"] < 5 and ideal["unvoiced_notes"] == 0
    assert ideal["notes"][12]["measured_hz"] == pytest.approx(261.63, rel=0.01)  # 1 V: C4
    deaf = pitch_accuracy(write_oscillator_bundle(str(tmp_path / "deaf"), follow_f0=False))
    assert deaf["median_abs_cents"] > 300
    silent = pitch_accuracy(write_oscillator_bundle(str(tmp_path / "silent"), gain=0.0))
    assert silent["unvoiced_notes"] == 37 and silent["median_abs_cents"] == float("inf")


def test_a_gate_counts_as_answered_by_sound_within_half_a_second_of_its_rise():
    windows = 104  # 5.2 s of 50 ms windows
    quiet = np.ones(windows, bool)
    quiet[0:2] = False    # gate at 0 s: a plucked note that dies at once
    quiet[49:51] = False  # gate at 2 s: answered 0.45 s late, still in time
    assert gate_answers(quiet, [0.0, 2.0]) == (2, 0)
    # A gate at 4 s with silence after it is unanswered; one at 5 s is not judged
    # (less than 0.5 s of audio follows it).
    assert gate_answers(quiet, [0.0, 2.0, 4.0, 5.0]) == (3, 1)
    quiet[49:51] = True
    assert gate_answers(quiet, [0.0, 2.0]) == (2, 1)


def test_answer_delays_time_each_gate_to_its_sound():
    sr, gates = 8000, [0.0, 1.0, 2.0, 3.0]
    audio = np.zeros(4 * sr, np.float32)
    t = np.arange(1600) / sr
    for g, late_s in zip(gates[:3], (0.0, 0.02, 0.2)):
        start = int((g + late_s) * sr)
        # A soft lead-in (-20 dB) before the note's own level: timed at the note.
        audio[start - 400:start] = 0.03 * np.sin(2 * np.pi * 440 * t[:400]) if start else 0
        audio[start:start + 1600] = 0.3 * np.sin(2 * np.pi * 440 * t)
    delays = answer_delays(audio, sr, gates)  # gate 4 is never answered: not timed
    assert len(delays) == 3
    np.testing.assert_allclose(delays, [0.0, 20.0, 200.0], atol=1.0)
    # A gate over sound that only goes on (no new note) is not answered at once.
    steady = 0.3 * np.sin(2 * np.pi * 440 * np.arange(2 * sr) / sr).astype(np.float32)
    assert answer_delays(steady, sr, [0.5, 1.0]) == [250.0, 250.0]
    steady[int(1.05 * sr):] *= 4.0   # +12 dB, 50 ms after the second gate
    assert answer_delays(steady, sr, [0.5, 1.0])[1] == pytest.approx(50.0, abs=1.0)


def test_generation_check_flags_nan_clipping_and_silence(tmp_path):
    good = generation_check(write_oscillator_bundle(str(tmp_path / "good")), 6.0)
    assert good["ok"] and good["clipped_samples"] == 0 and good["longest_silence_s"] == 0
    assert good["limited_samples"] == 0
    assert good["gates"] == 3 and good["unanswered_gates"] == 0
    # A steady oscillator's sound merely goes on: only the first gate (out of silence) is
    # answered by a rise; the others count as the whole window.
    assert good["answer_ms"]["p10"] < 100 and good["answer_ms"]["p50"] == 250.0
    assert good["seconds"] == pytest.approx(6.0, abs=0.01)
    loud = generation_check(write_oscillator_bundle(str(tmp_path / "loud"), gain=10.0), 3.0)
    # Where a hard clip would cut, the output stage's limiter rounds the peak off up to
    # full scale; it still counts as clipped (heard as saturation).
    assert not loud["ok"] and loud["clipped_samples"] > 0
    assert LIMIT_KNEE < loud["peak"] <= 1.0
    assert loud["limited_samples"] > loud["clipped_samples"]  # bent short of full scale too
    assert loud["model_peak"] > 1 / loud["output_level"]
    # Over full scale in the voice, under it after the module's output level (0.8): the
    # module does not clip, and the report still shows the voice's own peak.
    hot = generation_check(write_oscillator_bundle(str(tmp_path / "hot"), gain=3.0), 3.0)
    assert hot["output_level"] == 0.8 and hot["model_peak"] > 1.0
    assert hot["ok"] and hot["clipped_samples"] == 0 and hot["peak"] < 1.0
    quiet = generation_check(write_oscillator_bundle(str(tmp_path / "quiet"), gain=0.0), 3.0)
    assert not quiet["ok"] and quiet["longest_silence_s"] == pytest.approx(3.0)
    assert quiet["gates"] == 2 and quiet["unanswered_gates"] == 2
    # CV1's slow sine takes latent 0 below zero after 10 s; this voice then breaks down.
    broken = write_oscillator_bundle(str(tmp_path / "nan"), nan_below_zero=True)
    result = generation_check(broken, 12.0)
    assert not result["ok"] and result["nan_at_s"] == pytest.approx(10.0, abs=0.1)
    assert result["seconds"] == pytest.approx(result["nan_at_s"], abs=0.01)
