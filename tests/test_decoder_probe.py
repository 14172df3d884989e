"""benchmarks/decoder_probe.py reads where a run's decoder puts its energy, its frame
buzz and its stuck waveform heads."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import torch
from neurorave.models.datastore import write_dataset
from neurorave.models.training.cli import train

SR = 16000


def _module():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "decoder_probe.py"
    spec = importlib.util.spec_from_file_location("decoder_probe", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_energy_lands_in_the_band_of_its_frequency():
    bench = _module()
    t = np.arange(48000) / 48000
    shares = bench.energy_shares(np.sin(2 * np.pi * 300 * t) + 0.1 * np.sin(2 * np.pi * 4000 * t),
                                 48000)
    assert len(shares) == 6 and abs(sum(shares) - 1) < 1e-9
    assert shares[2] > 0.98 and 0.005 < shares[4] < 0.015   # 100-500 Hz, 2-8 kHz
    # At 16 kHz the last band ends at Nyquist.
    assert len(bench.energy_shares(np.sin(2 * np.pi * 300 * t[:16000]), 16000)) == 5


def test_a_stuck_head_is_found_and_the_figures_come_with_the_datas(tmp_path):
    bench = _module()
    rng = np.random.default_rng(0)
    t = np.arange(8192) / SR
    chunks = np.array([0.3 * np.sin(2 * np.pi * rng.uniform(200, 800) * t)
                       + 0.01 * rng.standard_normal(len(t)) for _ in range(24)], np.float32)
    data = write_dataset(tmp_path / "data", chunks, SR, [f"c{i}" for i in range(24)])
    torch.set_num_threads(1)
    run = tmp_path / "run"
    train("tiny", str(data), str(run), steps=2, progress=False)
    report = bench.probe(str(run), str(data), 3, "last.pt")
    assert abs(sum(report["data_energy_share"]) - 1) < 1e-3  # shares kept to 4 places
    assert report["data_energy_share"][2] + report["data_energy_share"][3] > 0.95
    assert 0 <= report["frame_buzz"] <= 1 and report["heads_stuck"] == []
    assert report["last_session_step"] == 2
    assert json.loads(json.dumps(report)) == report          # --json writes it as it is
    # Band 1's head pushed to saturation (its bias far beyond tanh's knee): stuck.
    weights = run / "weights" / "last.pt"
    state = torch.load(weights, weights_only=True)
    state["decoder.waveform.conv.bias"][1] = 50.0
    torch.save(state, weights)
    stuck = bench.probe(str(run), str(data), 3, "last.pt")
    assert stuck["heads_stuck"] == [1] and stuck["largest_head_mean"] > 0.99
