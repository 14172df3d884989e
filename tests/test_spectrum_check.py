"""benchmarks/spectrum_check.py finds a steady tone the data lacks (and only such), and
reads the 95% roll-off, at 48 kHz."""
import importlib.util
from pathlib import Path

import numpy as np
import scipy.signal

SR = 48000


def _module():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "spectrum_check.py"
    spec = importlib.util.spec_from_file_location("spectrum_check", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _noise(seconds, seed=0, cutoff=None):
    x = 0.05 * np.random.default_rng(seed).standard_normal(int(seconds * SR))
    if cutoff:
        x = scipy.signal.sosfilt(scipy.signal.butter(8, cutoff, fs=SR, output="sos"), x)
    return x


def _sine(hz, seconds, amp=0.01):
    return amp * np.sin(2 * np.pi * hz * np.arange(int(seconds * SR)) / SR)


def test_a_whistle_the_data_lacks_is_found_and_one_it_has_is_not_a_failure():
    bench = _module()
    played = _noise(6) + _sine(5512.0, 6) + _sine(1100.0, 6)
    data = _noise(6, seed=1) + _sine(1100.0, 6)          # the data has the 1.1 kHz line
    report = bench.compare(played, data, SR)
    tones = report["steady_tones"]
    assert len(tones) == 2
    low, high = sorted(tones, key=lambda t: t["hz"])
    assert abs(low["hz"] - 1100) <= 8 and abs(high["hz"] - 5512) <= 8   # 4 Hz bins
    assert report["tones_the_data_lacks"] == [high["hz"]]
    assert low["data_lacks"] is False and low["data_share"] > 0.9


def test_partials_that_move_with_the_notes_are_no_steady_tone():
    bench = _module()
    notes = np.concatenate([_sine(440.0 * 2 ** (k / 12), 0.25, amp=0.05)
                            for k in range(24)]) + _noise(6)
    report = bench.compare(notes, _noise(6, seed=2), SR)
    assert report["steady_tones"] == [] and report["windows"] == 24


def test_the_rolloff_follows_the_bandwidth():
    bench = _module()
    narrow = bench.compare(_noise(4, cutoff=4000), _noise(4, seed=3, cutoff=8000), SR)
    assert 0.4 < narrow["rolloff_ratio"] < 0.6
    same = bench.compare(_noise(4, cutoff=8000), _noise(4, seed=4, cutoff=8000), SR)
    assert abs(same["rolloff_ratio"] - 1) < 0.05


def test_a_pattern_repeating_every_frame_is_read_as_frame_buzz():
    bench = _module()
    hop = 256
    rng = np.random.default_rng(5)
    pattern = np.tile(0.02 * rng.standard_normal(hop), int(4 * SR) // hop)
    noise = _noise(4)[: len(pattern)]
    report = bench.compare(noise + pattern, _noise(4, seed=6), SR, hop)
    # rms of the pattern over the whole: 0.02 / sqrt(0.05^2 + 0.02^2) = 0.37
    assert 0.33 < report["frame_synchronous"] < 0.41
    assert report["data_frame_synchronous"] < 0.06       # noise: about 1 / sqrt(750)
    assert bench.compare(noise, noise, SR, hop)["frame_synchronous"] < 0.06
