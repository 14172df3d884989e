"""benchmarks/gate_onsets.py counts gates answered by an onset, and onsets unasked."""
import importlib.util
from pathlib import Path

import numpy as np

SR = 48000


def _module():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "gate_onsets.py"
    spec = importlib.util.spec_from_file_location("gate_onsets", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _clicks(times, seconds=4.0):
    audio = 1e-4 * np.random.default_rng(0).standard_normal(int(seconds * SR))
    decay = np.exp(-np.arange(int(0.05 * SR)) / (0.01 * SR))
    for t in times:
        i = int(t * SR)
        audio[i:i + len(decay)] += 0.5 * decay[:len(audio) - i]
    return audio


def test_hits_on_the_gates_answer_them_and_a_stray_hit_is_unasked():
    bench = _module()
    gates = np.arange(0.0, 4.0, 0.5)
    hits = [g + 0.005 for g in gates[1:]] + [1.25]     # 5 ms late, and one stray
    r = bench.onsets_against_gates(_clicks(hits), SR, gates, 0.02)
    assert (r["gates"], r["answered"]) == (7, 7)
    assert (r["onsets"], r["unasked"]) == (8, 1)


def test_late_hits_do_not_answer():
    bench = _module()
    gates = np.arange(0.0, 4.0, 0.5)
    r = bench.onsets_against_gates(_clicks([g + 0.06 for g in gates[1:]]), SR, gates, 0.02)
    assert r["answered"] == 0 and r["unasked"] == r["onsets"] == 7


def test_an_onset_read_a_little_before_its_gate_answers_it_and_an_early_one_does_not():
    # The detector's own spread (EARLY_S) before a gate counts as the gate's; a hit well
    # before it (25 ms) is no answer and nobody asked for it.
    bench = _module()
    gates = np.arange(0.0, 4.0, 0.5)
    near = bench.onsets_against_gates(_clicks([g - 0.005 for g in gates[1:]]), SR, gates, 0.02)
    assert near["answered"] == 7 and near["unasked"] == 0
    early = bench.onsets_against_gates(_clicks([g - 0.025 for g in gates[1:]]), SR, gates, 0.02)
    assert early["answered"] == 0 and early["unasked"] == early["onsets"] == 7
