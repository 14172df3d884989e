"""`neurorave evaluate MODEL --data DATA --out REPORT [--limit N] [--compare OTHER]
[--device cpu|cuda] [--seed S] [--play-seconds S]`: measure one model (and its twin) on
the test split.

MODEL and OTHER are each a bundle (ONNX Runtime, streamed as on the module) or a
training run (its checkpoint in torch, on `--device`). A bundle is also played as the
module plays it, by the `play_checks` the caller hands in (the instrument owns how it
plays: `neurorave.firmware.instrument_check`, wired in by the command line): 1 V/oct
pitch accuracy, and `--play-seconds` of generation checked for NaN, clipping and
silence. Writes REPORT/metrics.json (every number) and REPORT/report.html (one
self-contained page).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np
from neurorave.common.errors import UserError

# The paper's NSynth figures (shared REFERENCES.md), shown as a reference row.
PAPER = {
    "source": "Continuous descriptor-based control for deep audio synthesis "
              "(ICASSP 2023, arXiv 2302.13542), NSynth",
    "reconstruction": {
        "C-RAVE": {"jnd": 0.235, "mel_l1": 13.92, "mstft": 4.88, "centroid_corr": 0.74},
        "F-RAVE": {"jnd": 0.240, "mel_l1": 14.58, "mstft": 4.93, "centroid_corr": 0.78},
    },
    "control_corr_by_size": {"F-RAVE": {"1": 0.83, "2": 0.78, "3": 0.75, "4": 0.75}},
    "control_corr_single": {"F-RAVE": {"rms": 0.76, "bandwidth": 0.66, "sharpness": 0.72,
                                       "boominess": 0.77, "mean": 0.73}},
}
PROBE_TRAIN_ITEMS = 256
# (bundle path, seconds of generation, seed) -> {"pitch": ..., "generation": ...}
PlayChecks = Callable[[str, float, int], Dict[str, Any]]


def _progress(enabled: bool):
    from tqdm import tqdm

    def wrap(iterable, desc: str = "", total: Optional[int] = None):
        return tqdm(iterable, desc=desc, total=total, disable=not enabled, file=sys.stderr,
                    leave=False, dynamic_ncols=True)
    return wrap


def _check(synth, dataset) -> int:
    if dataset.sr != synth.sample_rate:
        raise UserError(f"{dataset.path}: audio at {dataset.sr} Hz but model {synth.name!r} "
                        f"plays at {synth.sample_rate} Hz")
    usable = (dataset.chunk // synth.step) * synth.step
    if usable < 4 * synth.hop:
        raise UserError(f"{dataset.path}: chunks of {dataset.chunk} samples are too short for "
                        f"model {synth.name!r} ({synth.hop} samples per latent frame)")
    return usable


def evaluate_model(synth, dataset, limit: Optional[int], seed: int = 0,
                   progress: bool = True) -> Dict[str, Any]:
    """Every measurement of one model; returns {"metrics": ..., "artefacts": ...}."""
    from neurorave.models.evaluation.control import run_control
    from neurorave.models.evaluation.disentanglement import probe_accuracy
    from neurorave.models.evaluation.metrics import PERCEPTUAL, reconstruction_metrics

    bar = _progress(progress)
    usable = _check(synth, dataset)
    test = dataset.split("test")
    n = len(test) if limit is None else min(limit, len(test))
    if n < 2:
        raise UserError(f"{dataset.path}: the test split has {len(test)} item(s); the control "
                        "protocol needs at least 2")
    originals = np.array(test.audio[:n, :usable], dtype=np.float32)
    timing: Dict[str, float] = {}

    start = time.perf_counter()
    z = np.concatenate([synth.encode(originals[i:i + 1])
                        for i in bar(range(n), f"{synth.name}: encode")])
    timing["encode_s"] = time.perf_counter() - start
    curves_raw = synth.describe(originals)
    start = time.perf_counter()
    recon = synth.decode(z, curves_raw, seed=seed)
    timing["decode_s"] = time.perf_counter() - start
    timing["decode_realtime_factor"] = (n * usable / synth.sample_rate) / max(timing["decode_s"],
                                                                              1e-9)
    curves_norm = synth.normalise(curves_raw)
    recon_norm = synth.normalise(synth.describe(recon))
    recon_metrics: Dict[str, Any] = reconstruction_metrics(originals, recon, synth.sample_rate)
    from neurorave.models.evaluation.control import SKIP_FRAMES, pearson01
    recon_metrics["attribute_corr"] = {
        name: float(np.mean([pearson01(curves_norm[i, a, SKIP_FRAMES:],
                                       recon_norm[i, a, SKIP_FRAMES:]) for i in range(n)]))
        for a, name in enumerate(synth.attributes)}
    recon_metrics["perceptual"] = dict(PERCEPTUAL)

    start = time.perf_counter()
    from neurorave.models.audibility import AUDIBLE_RMS
    audible = originals_rms(originals, synth.sample_rate, synth.hop) >= AUDIBLE_RMS
    control = run_control(synth, z, curves_norm, recon_norm, seed=seed,
                          progress=lambda jobs: bar(jobs, f"{synth.name}: control"),
                          audible=audible)
    timing["control_s"] = time.perf_counter() - start

    start = time.perf_counter()
    train = dataset.split("train")
    m = min(len(train), PROBE_TRAIN_ITEMS if limit is None else max(4 * limit, 16))
    if m < 1:
        raise UserError(f"{dataset.path}: the train split is empty (the probe trains on it)")
    rows = np.unique(np.linspace(0, len(train) - 1, m).round().astype(int))
    train_audio = np.array(train.audio[rows, :usable], dtype=np.float32)
    z_train = np.concatenate([synth.encode(train_audio[i:i + 8])
                              for i in bar(range(0, len(rows), 8), f"{synth.name}: probe data")])
    curves_train = synth.describe(train_audio)
    disentanglement = probe_accuracy(z_train, curves_train, z, curves_raw, synth.attributes,
                                     seed=seed)
    timing["disentanglement_s"] = time.perf_counter() - start

    metrics = {"name": synth.name, "variant": synth.variant, "kind": synth.kind,
               "sample_rate": synth.sample_rate, "hop": synth.hop,
               "attributes": list(synth.attributes), "latent_size": int(z.shape[1]),
               "reconstruction": recon_metrics, "control": control["metrics"],
               "disentanglement": disentanglement, "timing": timing}
    artefacts = {"originals": originals, "reconstructions": recon, "z": z,
                 "curves_norm": curves_norm, "recon_norm": recon_norm,
                 "examples": control["examples"]}
    return {"metrics": metrics, "artefacts": artefacts}


def _finite_json(value: Any) -> Any:
    """NaN/inf -> null, so metrics.json is strict JSON."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_json(v) for v in value]
    return value


def evaluate(model: str, data: str, out: str, limit: Optional[int] = None,
             compare: Optional[str] = None, device: str = "cpu", seed: int = 0,
             progress: bool = True, play_seconds: float = 600.0,
             play_checks: Optional[PlayChecks] = None) -> Dict[str, Any]:
    from neurorave.models.datastore import open_dataset
    from neurorave.models.evaluation.report import write_report
    from neurorave.models.evaluation.synth import BundleSynth, open_synth

    if limit is not None and limit < 2:
        raise UserError(f"--limit must be >= 2 (the control protocol pairs items), got {limit}")
    if not play_seconds >= 0:
        raise UserError(f"--play-seconds must be >= 0, got {play_seconds}")
    dataset = open_dataset(data)
    synths = [open_synth(model, device)] + ([open_synth(compare, device)] if compare else [])
    results: List[Dict[str, Any]] = []
    for synth, path in zip(synths, [model, compare]):
        result = evaluate_model(synth, dataset, limit, seed, progress)
        result["metrics"]["path"] = str(Path(path).resolve())
        if isinstance(synth, BundleSynth):
            # Which graphs these figures belong to: a bundle installed with them can be
            # checked against its metrics (tests/test_bundled_models.py).
            result["metrics"]["graphs"] = {role: graph.sha256
                                           for role, graph in synth.bundle.graphs.items()}
            if play_checks is not None:
                start = time.perf_counter()
                result["metrics"]["instrument"] = play_checks(path, play_seconds, seed)
                result["metrics"]["timing"]["instrument_s"] = time.perf_counter() - start
        results.append(result)
    test_items = len(results[0]["artefacts"]["originals"])
    metrics = {
        "format": "neurorave-evaluation", "format_version": 1,
        "data": {"path": str(Path(data).resolve()), "split": "test", "items": test_items,
                 "sample_rate": dataset.sr,
                 "seconds": float(results[0]["artefacts"]["originals"].size / dataset.sr)},
        "settings": {"seed": seed, "limit": limit, "device": device},
        "models": [r["metrics"] for r in results],
        "paper": PAPER,
    }
    metrics = _finite_json(metrics)
    folder = Path(out)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n",
                                             encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{folder}: cannot write the report ({exc.strerror or exc})") from None
    write_report(folder / "report.html", metrics, [r["artefacts"] for r in results])
    return metrics


def main(args, play_checks: Optional[PlayChecks] = None) -> int:
    metrics = evaluate(args.bundle, args.data, args.out, args.limit,
                       getattr(args, "compare", None), getattr(args, "device", "cpu"),
                       getattr(args, "seed", 0),
                       play_seconds=getattr(args, "play_seconds", 600.0),
                       play_checks=play_checks)
    for m in metrics["models"]:
        r, c, d = m["reconstruction"], m["control"]["by_size"], m["disentanglement"]
        print(f"{m['name']} ({m['variant']}): mSTFT {r['mstft']['mean']:.3f}, "
              f"mel L1 {r['mel_l1']['mean']:.2f} dB, control corr "
              + "/".join(f"{c[k]['corr']:.2f}" for k in sorted(c))
              + f", probe accuracy {d['accuracy']:.3f} (chance {d['chance']:.3f})")
        played = m.get("instrument")
        if played:
            p, g = played["pitch"], played["generation"]
            if p.get("available"):
                print(f"  1 V/oct: median error {p['median_abs_cents']:.1f} cents over "
                      f"{p['octaves']:.0f} octaves ({p['unvoiced_notes']} unvoiced notes)")
            print(f"  {g['seconds']:.0f} s of {g['mode']}: "
                  + ("ok" if g["ok"] else "FAILED")
                  + f" (NaN at {g['nan_at_s']}, {g['clipped_samples']} clipped samples, "
                  f"longest silence {g['longest_silence_s']:.2f} s)")
            if g.get("answer_ms", {}).get("p50") is not None:
                a = g["answer_ms"]
                print(f"  gate to answer: p10 {a['p10']:.0f} ms, p50 {a['p50']:.0f} ms, "
                      f"p90 {a['p90']:.0f} ms")
    print(f"wrote {Path(args.out) / 'report.html'} and metrics.json")
    return 0


def originals_rms(audio: np.ndarray, sr: int, hop: int) -> np.ndarray:
    """RMS per frame [N, F] of the originals, on the descriptors' frames (whether or not
    the model has rms among its attributes)."""
    import torch
    from neurorave.models.descriptors_torch import compute_batch

    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
        return compute_batch(x, sr, hop, ["rms"]).numpy()[:, 0]
