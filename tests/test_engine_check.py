"""tools/engine_check.py, the engine part of tools/gpu-check.sh (issue 23), on CPU: the
CPU engine against itself must match exactly; the GPU variants say why they cannot run."""
import importlib.util
import json
import os

import numpy as np
from toy_bundle import write_toy_bundle

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location("engine_check",
                                               os.path.join(REPO, "tools", "engine_check.py"))
engine_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(engine_check)


def test_snr_of_a_known_error():
    t = np.arange(16000) / 16000
    reference = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    noise = np.random.default_rng(0).standard_normal(t.size) * np.sqrt(0.5) * 1e-2
    figures = engine_check.snr_db(reference, reference + noise.astype(np.float32))
    assert abs(figures["snr_db"] - 40.0) < 0.3 and not figures["exact"]
    assert figures["max_abs_error"] > 0.01
    same = engine_check.snr_db(reference, reference.copy())
    assert same["exact"] and same["snr_db"] >= 200 and same["max_abs_error"] == 0.0


def test_the_cpu_engine_against_itself_is_exact_and_the_report_is_json(tmp_path):
    bundle = write_toy_bundle(str(tmp_path / "toy"), frame=256)
    out = tmp_path / "engines.json"
    status = engine_check.main([bundle, "--seconds", "2", "--out", str(out),
                                "--variants", "ort-cpu,ort-gpu-fp16,trt-fp16"])
    assert status == 0
    report = json.loads(out.read_text())       # strict JSON: no Infinity, no NaN
    variants = report["bundles"][0]["variants"]
    cpu = variants["ort-cpu"]
    assert cpu["available"] and cpu["exact"] and cpu["snr_db"] >= 200
    assert cpu["max_abs_error"] == 0.0 and cpu["meets_goal"]
    assert 0 < cpu["p50_ms"] <= cpu["p99_ms"]
    assert cpu["first_start_s"] > 0 and cpu["cached_start_s"] > 0
    assert report["bundles"][0]["calls"] == 125      # 2 s at 16 kHz in 256-sample frames
    assert cpu["assignment"]["decoder"]["CPUExecutionProvider"]["nodes"] == 7
    for name in ("ort-gpu-fp16", "trt-fp16"):
        assert not variants[name]["available"] and variants[name]["reason"]
    assert report["all_meet_goal"]
    assert "Infinity" not in out.read_text() and "NaN" not in out.read_text()
