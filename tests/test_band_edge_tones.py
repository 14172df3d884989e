"""benchmarks/band_edge_tones.py reads a steady tone at a band edge, and only there."""
import importlib.util
from pathlib import Path

import numpy as np

SR, BANDS = 16000, 8


def _module():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "band_edge_tones.py"
    spec = importlib.util.spec_from_file_location("band_edge_tones", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _noise(seconds: float, seed: int = 0) -> np.ndarray:
    return 0.05 * np.random.default_rng(seed).standard_normal(int(seconds * SR))


def test_a_tone_at_an_edge_stands_out_and_noise_does_not():
    bench = _module()
    t = np.arange(int(4 * SR)) / SR
    whistle = _noise(4) + 0.02 * np.sin(2 * np.pi * 2000.0 * t)
    report = bench.summary(bench.edge_lines(whistle, SR, BANDS))
    assert set(report) == {"2000 Hz", "4000 Hz", "6000 Hz"}  # Nyquist is no edge
    assert report["2000 Hz"]["stands_out"] == 1.0
    assert report["4000 Hz"]["stands_out"] == 0.0
    plain = bench.summary(bench.edge_lines(_noise(4, seed=1), SR, BANDS))
    assert all(v["stands_out"] == 0.0 for v in plain.values())


def test_a_tone_off_the_edge_and_silence_are_not_read():
    bench = _module()
    t = np.arange(int(4 * SR)) / SR
    near = _noise(4) + 0.02 * np.sin(2 * np.pi * 2100.0 * t)  # in the neighbourhood, off the bin
    report = bench.summary(bench.edge_lines(near, SR, BANDS))
    assert report["2000 Hz"]["stands_out"] == 0.0
    silent = bench.summary(bench.edge_lines(np.zeros(4 * SR), SR, BANDS))
    assert all(v["windows"] == 0 and v["stands_out"] is None for v in silent.values())
