"""`neurorave bench`: per-engine figures for a bundle and the RAVE-v1-sized reference,
each measured in its own process, with the ratios between them."""
import json

import numpy as np
import pytest
import torch
from neurorave.firmware.cli import main as cli_main
from neurorave.models.datastore import write_dataset
from neurorave.models.export.command import export_run
from neurorave.models.runtime.bench import bench, ensure_reference, format_report
from neurorave.models.runtime.bundle import load_bundle
from neurorave.models.training.cli import train

SR = 16000


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    rng = np.random.default_rng(3)
    t = np.arange(4096) / SR
    audio = np.array([0.5 * np.sin(2 * np.pi * rng.uniform(100, 1000) * t) for _ in range(12)],
                     dtype=np.float32)
    data = write_dataset(root / "data", audio, SR, [f"s{i}" for i in range(12)])
    torch.set_num_threads(1)
    train("tiny", str(data), str(root / "run"), steps=4, progress=False)
    bundle = export_run(str(root / "run"), str(root / "bundle"))
    # Where the default (cached) reference goes once XDG_CACHE_HOME is root/cache.
    return root, str(bundle), str(root / "cache" / "neurorave" / "reference" / "rave-v1")


def test_bench_reports_figures_and_ratios_against_the_reference(bundles, capsys, monkeypatch):
    root, bundle, reference = bundles
    monkeypatch.setenv("XDG_CACHE_HOME", str(root / "cache"))
    monkeypatch.delenv("NEURORAVE_REFERENCE", raising=False)
    status = cli_main(["bench", bundle, "--json", "--engine", "ort-cpu", "--seconds", "0.3"])
    assert status == 0
    report = json.loads(capsys.readouterr().out)
    # The cached reference was made on the way (torch is here) and is RAVE-v1 sized.
    ref = load_bundle(reference)
    assert (ref.frame_size, ref.sample_rate) == (2048, 48000)
    assert report["reference"]["frame_size"] == 2048
    entry = report["engines"]["ort-cpu"]
    for side in ("bundle", "reference"):
        f = entry[side]
        assert f["provider"] == "CPUExecutionProvider"
        # Which provider really ran each node, from a profiled run (issue 23).
        assert set(f["assignment"]["decoder"]) == {"CPUExecutionProvider"}
        assert f["assignment"]["decoder"]["CPUExecutionProvider"]["time_share"] == 1.0
        assert f["calls"] >= 30
        assert 0 < f["p50_ms"] <= f["p99_ms"] <= f["max_ms"]
        assert f["realtime_factor"] > 0 and f["peak_rss_mb"] > 10
        assert 0 < f["load_first_frame_s"] < 60
        assert f["macs_per_frame"] > 0
    # Bundle and reference alternate in rounds of fresh processes, times pooled.
    assert entry["bundle"]["rounds"] == entry["reference"]["rounds"] == 3
    assert entry["bundle"]["calls"] >= 3 * 30
    # A tiny model does far less work per second of audio than RAVE v1.
    assert 0 < entry["ratio"]["macs_per_audio_second"] < 0.1
    # The ratios take the reference at the bundle's rate (16 kHz here, 48 kHz for the
    # reference): the same graph then renders 3x the audio per frame's work.
    scale = 48000 / SR
    ratio = entry["bundle"]["realtime_factor"] / (entry["reference"]["realtime_factor"] * scale)
    assert entry["ratio"]["realtime_factor"] == pytest.approx(ratio)
    macs = entry["bundle"]["gmacs_per_audio_second"] * scale / entry["reference"][
        "gmacs_per_audio_second"]
    assert entry["ratio"]["macs_per_audio_second"] == pytest.approx(macs)
    # Engines this machine lacks are listed as skipped with a reason, not hidden.
    everything = bench(bundle, "auto", 1, 0.2, reference)
    assert "ort-cpu" in everything["engines"]
    for kind in ("trt", "ort-gpu"):
        assert kind in everything["engines"] or everything["skipped"][kind]
    text = format_report(everything)
    assert "reference" in text and "RT x" in text and "ratio: real-time factor" in text
    assert "the reference taken at 16000 Hz" in text


def test_frames_per_call_are_counted_per_frame(bundles, capsys, tmp_path):
    root, _, reference = bundles
    ensure_reference(reference)
    four = export_run(str(root / "run"), str(tmp_path / "four"), frames_per_call=4)
    report = bench(str(four), "ort-cpu", 1, 0.2, reference)
    f = report["engines"]["ort-cpu"]["bundle"]
    assert f["frames_per_call"] == 4
    # Real-time factor is audio seconds per compute second, whatever the call size.
    frame_s = load_bundle(str(four)).frame_size / SR
    assert f["realtime_factor"] == pytest.approx(frame_s / (f["mean_ms"] / 1e3))


@pytest.mark.parametrize("argv, words", [
    (["bench", "{root}/nowhere"], "nowhere"),
    (["bench", "{root}/data"], "model.json"),
    (["bench", "{bundle}", "--threads", "0"], "--threads"),
    (["bench", "{bundle}", "--seconds", "0"], "--seconds"),
    # A huge count made the engine spawn threads until the machine stalled.
    (["bench", "{bundle}", "--threads", "100000"], "--threads 100000: at most"),
    # A --reference that holds no bundle is a mistake, not a place to export into.
    (["bench", "{bundle}", "--reference", "{root}/typo"], "--reference"),
])
def test_bad_bench_requests_are_one_line(bundles, capsys, argv, words):
    root, bundle, _ = bundles
    status = cli_main([a.format(root=root, bundle=bundle) for a in argv])
    err = capsys.readouterr().err
    assert status != 0 and words in err and len(err.strip().splitlines()) == 1, err
    assert not (root / "typo").exists()
