"""The inference engines on this machine, checked against the CPU engine (issue 23).

For each bundle and each engine variant (trt and ort-gpu, each in FP16 and FP32, and
ort-cpu itself): build it (first start, an empty cache, a fresh process), open it again
(cached start, a fresh process), stream SECONDS of audio through the decoder from the
same inputs and noise as ONNX Runtime's CPU engine and compare (SNR in dB, max absolute
error; goal SNR >= 40 dB), and time each decoder call (p50/p99 per latent frame). Which
provider ran each graph comes from a profiled run. A variant that cannot run here is
listed with the reason. Writes a JSON report (--out) and prints a summary.

Run by tools/gpu-check.sh; on a machine without a GPU only ort-cpu runs, against itself
(an exact match: its SNR is reported as `exact`), which is how it is tested here.

    python tools/engine_check.py BUNDLE... [--seconds 10] [--out REPORT.json]
        [--variants trt-fp16,trt-fp32,ort-gpu-fp16,ort-gpu-fp32,ort-cpu]
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional

import numpy as np

VARIANTS = ("trt-fp16", "trt-fp32", "ort-gpu-fp16", "ort-gpu-fp32", "ort-cpu")
GOAL_SNR_DB = 40.0
SNR_CAP_DB = 300.0   # an exact match is reported as this, with "exact": true

_LOAD = r"""
import json, sys, time
start = time.perf_counter()
from neurorave.models.runtime.bundle import load_bundle
from neurorave.models.runtime.engines import EngineUnavailable, open_engine
path, kind, cache, fp16 = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
imported = time.perf_counter()
try:
    engine = open_engine(load_bundle(path), kind, 1, roles=["decoder"], cache_dir=cache,
                         fp16=fp16)
except EngineUnavailable as exc:
    print(json.dumps({"unavailable": str(exc)}))
    sys.exit(0)
print(json.dumps({"load_s": time.perf_counter() - imported,
                  "import_s": imported - start, "notes": engine.build_notes}))
"""


def split_variant(variant: str):
    if variant == "ort-cpu":
        return "ort-cpu", False
    kind, _, precision = variant.rpartition("-")
    return kind, precision == "fp16"


def snr_db(reference: np.ndarray, test: np.ndarray) -> Dict[str, Any]:
    error = test.astype(np.float64) - reference.astype(np.float64)
    noise = float(np.sum(error ** 2))
    signal = float(np.sum(reference.astype(np.float64) ** 2))
    exact = noise == 0.0
    if exact:
        value = SNR_CAP_DB
    else:
        value = 10 * math.log10(signal / noise) if signal > 0 else -SNR_CAP_DB
    return {"snr_db": round(min(value, SNR_CAP_DB), 2), "exact": exact,
            "max_abs_error": float(np.max(np.abs(error))) if error.size else 0.0,
            "reference_rms": math.sqrt(signal / max(1, reference.size))}


def decoder_inputs(bundle: Any, calls: int, seed: int = 7) -> List[Dict[str, np.ndarray]]:
    """Slowly moving latents and attributes through their ranges, the same for every
    engine (the noise inputs come from each engine's own generator, reset alike)."""
    spec = bundle.graphs["decoder"]
    rng = np.random.default_rng(seed)
    noise = {n.input for n in spec.noise}
    walk: Dict[str, np.ndarray] = {}
    frames = []
    for call in range(calls):
        feed = {}
        for tensor in spec.inputs:
            if tensor.name in noise:
                continue
            if tensor.name == "attributes":
                phase = 2 * np.pi * call / max(1, calls) * np.arange(1, tensor.shape[1] + 1)
                lows = np.array([a.min for a in bundle.attributes], np.float32)
                highs = np.array([a.max for a in bundle.attributes], np.float32)
                mid, half = (lows + highs) / 2, (highs - lows) / 2
                value = (mid + 0.8 * half * np.sin(phase)).astype(np.float32)
                feed[tensor.name] = np.broadcast_to(value[None, :, None], tensor.shape).copy()
            else:
                step = rng.standard_normal(tensor.shape).astype(np.float32) * 0.2
                walk[tensor.name] = 0.95 * walk.get(tensor.name, 0.0) + step
                feed[tensor.name] = walk[tensor.name].astype(np.float32)
        frames.append(feed)
    return frames


def stream(engine: Any, frames: List[Dict[str, np.ndarray]]):
    """The decoder's audio over all `frames` and each call's time (ns)."""
    decoder = engine.graphs["decoder"]
    engine.reset()
    name = decoder.spec.outputs[0].name
    out, times = [], np.zeros(len(frames), np.int64)
    for i, feed in enumerate(frames):
        for key, value in feed.items():
            decoder.inputs[key][...] = value
        t0 = time.perf_counter_ns()
        decoder.fill_noise()
        decoder.run()
        times[i] = time.perf_counter_ns() - t0
        out.append(decoder.outputs[name].reshape(-1).copy())
    return np.concatenate(out), times


def _load_in_child(path: str, kind: str, cache: str, fp16: bool, python: str) -> Dict[str, Any]:
    result = subprocess.run([python, "-c", _LOAD, path, kind, cache, "1" if fp16 else "0"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no message"])[-1]
        return {"failed": last}
    found: Dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return found


def check_bundle(path: str, variants: List[str], seconds: float, cache_root: str,
                 python: str = sys.executable) -> Dict[str, Any]:
    from neurorave.models.runtime.bundle import load_bundle
    from neurorave.models.runtime.engine_prepare import engine_assignment
    from neurorave.models.runtime.engines import EngineUnavailable, open_engine

    bundle = load_bundle(path)
    spec = bundle.graphs["decoder"]
    samples_per_call = bundle.frame_size * spec.frames_per_call
    calls = max(1, int(math.ceil(seconds * bundle.sample_rate / samples_per_call)))
    frames = decoder_inputs(bundle, calls)
    reference_engine = open_engine(bundle, "ort-cpu", 1, roles=["decoder"])
    reference, _ = stream(reference_engine, frames)
    report: Dict[str, Any] = {"name": bundle.name, "path": path,
                              "sample_rate": bundle.sample_rate,
                              "frame_size": bundle.frame_size, "calls": calls,
                              "seconds": calls * samples_per_call / bundle.sample_rate,
                              "variants": {}}
    for variant in variants:
        kind, fp16 = split_variant(variant)
        cache = os.path.join(cache_root, f"{bundle.name}-{variant}")
        entry: Dict[str, Any] = {"kind": kind, "fp16": fp16}
        report["variants"][variant] = entry
        first = _load_in_child(path, kind, cache, fp16, python)      # empty cache: builds
        if "unavailable" in first or "failed" in first:
            entry["available"] = False
            entry["reason"] = first.get("unavailable") or first.get("failed")
            continue
        cached = _load_in_child(path, kind, cache, fp16, python)     # from the cache
        entry.update({"available": True, "first_start_s": round(first["load_s"], 3),
                      "cached_start_s": round(cached.get("load_s", float("nan")), 3),
                      "build_notes": first.get("notes", [])})
        try:
            engine = open_engine(bundle, kind, 1, roles=["decoder"], cache_dir=cache, fp16=fp16)
        except EngineUnavailable as exc:
            entry.update({"available": False, "reason": str(exc)})
            continue
        audio, times = stream(engine, frames)
        per_frame_ms = times / 1e6 / spec.frames_per_call
        warm = per_frame_ms[min(10, len(per_frame_ms) - 1):]
        entry.update(snr_db(reference, audio))
        entry.update({"provider": engine.provider,
                      "p50_ms": round(float(np.percentile(warm, 50)), 4),
                      "p99_ms": round(float(np.percentile(warm, 99)), 4),
                      "frame_ms": round(1e3 * bundle.frame_size / bundle.sample_rate, 3),
                      "assignment": engine_assignment(engine)})
        entry["meets_goal"] = entry["snr_db"] >= GOAL_SNR_DB
    return report


def run(paths: List[str], variants: List[str], seconds: float,
        cache_root: Optional[str] = None) -> Dict[str, Any]:
    from neurorave.models.runtime.engine_cache import gpu_info

    gpu = gpu_info()
    with tempfile.TemporaryDirectory(prefix="neurorave-engine-check-") as scratch:
        root = cache_root or scratch
        bundles = [check_bundle(p, variants, seconds, root) for p in paths]
    ran = [v for b in bundles for v in b["variants"].values() if v.get("available")]
    return {"goal_snr_db": GOAL_SNR_DB, "seconds": seconds,
            "gpu": None if gpu is None else {"name": gpu.name, "capability": gpu.capability},
            "bundles": bundles,
            "all_meet_goal": bool(ran) and all(v["meets_goal"] for v in ran)}


def summary(report: Dict[str, Any]) -> str:
    gpu = report["gpu"]
    lines = [f"engine check: {gpu['name'] + ' sm ' + gpu['capability'] if gpu else 'no GPU'}, "
             f"{report['seconds']:g} s of streaming per variant, goal SNR >= "
             f"{report['goal_snr_db']:g} dB"]
    for b in report["bundles"]:
        lines.append(f"{b['name']}: {b['sample_rate']} Hz, {b['frame_size']} samples/frame")
        for name, v in b["variants"].items():
            if not v.get("available"):
                lines.append(f"  {name:<13} not here: {v.get('reason')}")
                continue
            snr = "exact" if v["exact"] else f"{v['snr_db']:.1f} dB"
            lines.append(f"  {name:<13} SNR {snr:>9}  max err {v['max_abs_error']:.2e}  "
                         f"p50 {v['p50_ms']:.3f} ms  p99 {v['p99_ms']:.3f} ms  "
                         f"first start {v['first_start_s']:.2f} s  cached "
                         f"{v['cached_start_s']:.2f} s  ({v['provider']})")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("bundles", nargs="+")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--out", default=None)
    parser.add_argument("--cache", default=None,
                        help="keep the built engines here (default: a scratch folder)")
    args = parser.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    report = run(args.bundles, variants, args.seconds, args.cache)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=1)
    print(summary(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
