"""`neurorave bench BUNDLE [--threads N] [--json] [--engine KIND] [--seconds S] [--reference DIR]`.

Per engine: per-frame time (p50, p99, max), real-time factor, multiply-accumulates per
second of audio (from `macs_per_frame`, counted in torch at export), peak RSS, and bundle
load plus first frame. The same figures for the RAVE-v1-sized reference decoder come
with every report, with the ratios between the two, so a figure taken on a busy or
unknown machine still reads as a comparison.

Each (bundle, engine) is measured in fresh Python processes: peak RSS and load time
are then that engine's own, not what an earlier measurement left behind. The bundle and
the reference alternate in ROUNDS rounds, their times pooled, so that a shared machine's
load drifting meanwhile weighs on both sides of the ratio. The ratio takes the reference
at the bundle's sample rate (the same graph: the same work per frame, more or fewer
frames per audio second). The hot loop is what the voice thread does: per latent frame
the prior's noise and call (when the bundle has one), then the decoder's noise and call,
into bound buffers.
No torch here: the reference bundle is exported once by the learning side
(`neurorave export --reference rave-v1 --out DIR`); when it is missing and torch is
importable, bench makes it itself, cached under ~/.cache/neurorave (or where
$NEURORAVE_REFERENCE says). A `--reference DIR` must already hold one.
"""
import importlib.util
import json
import os
import subprocess
import sys
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
from neurorave.common.errors import UserError
from neurorave.models.runtime.bundle import load_bundle
from neurorave.models.runtime.engines import KINDS

REFERENCE_NAME = "rave-v1"
WARMUP_CALLS = 10
MIN_CALLS = 30
ROUNDS = 3


def reference_path() -> str:
    """Where the reference bundle is looked for: $NEURORAVE_REFERENCE, else the cache."""
    explicit = os.environ.get("NEURORAVE_REFERENCE")
    if explicit:
        return explicit
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "neurorave", "reference", REFERENCE_NAME)


def _make_command(path: str) -> str:
    return f"neurorave export --reference {REFERENCE_NAME} --out {path}"


def ensure_reference(path: str) -> Optional[str]:
    """The reference bundle's path, made now if torch is here; None (and a note) if not."""
    if os.path.isfile(os.path.join(path, "model.json")):
        return path
    if importlib.util.find_spec("torch") is None:
        print(f"bench: the reference bundle is missing ({path}); make it once on a machine "
              f"with the learning side installed: {_make_command(path)} (then copy it here, "
              "or point NEURORAVE_REFERENCE at it)", file=sys.stderr)
        return None
    print(f"bench: making the reference bundle once: {_make_command(path)}", file=sys.stderr)
    result = subprocess.run([sys.executable, "-m", "neurorave.firmware.cli", "export",
                             "--reference", REFERENCE_NAME, "--out", path],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise UserError(f"could not make the reference bundle ({last}); "
                        f"try: {_make_command(path)}")
    return path


# The child: one bundle on one engine, figures as JSON on stdout.
_CHILD = r"""
import json, resource, sys, time
start = time.perf_counter()
import numpy as np
from neurorave.models.runtime.bundle import load_bundle
from neurorave.models.runtime.engines import EngineUnavailable, open_engine
imported = time.perf_counter()
path, kind, threads, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
loaded = time.perf_counter()
try:
    bundle = load_bundle(path)
    roles = ["decoder", "prior"] if "prior" in bundle.graphs else ["decoder"]
    engine = open_engine(bundle, kind, threads, roles=roles)
except EngineUnavailable as exc:
    print(json.dumps({"engine": kind, "unavailable": str(exc)}))
    sys.exit(0)
dec = engine.graphs["decoder"]
rng = np.random.default_rng(0)
for name, array in dec.inputs.items():
    if name == "z":
        array[...] = rng.standard_normal(array.shape)
    elif name == "attributes":  # mid-range raw values
        for i, a in enumerate(bundle.attributes):
            array[:, i, :] = 0.5 * (a.min + a.max)
prior = engine.graphs.get("prior")
def call():
    # What the voice does per decoder call: the prior's frames (when the bundle has
    # one), then the decoder.
    if prior is not None:
        for _ in range(dec.spec.frames_per_call):
            prior.fill_noise()
            prior.run()
    dec.fill_noise()
    dec.run()
call()
first = time.perf_counter()
for _ in range(WARMUP_CALLS):
    call()
clock = time.perf_counter_ns
times = np.zeros(1000000, dtype=np.int64)
n = 0
deadline = clock() + int(seconds * 1e9)
while n < MIN_CALLS or (clock() < deadline and n < len(times)):
    t0 = clock()
    call()
    times[n] = clock() - t0
    n += 1
peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
# Which provider really runs each graph (ONNX Runtime assigns nodes silently): a
# profiled run, after the timing and the RSS (engine_prepare.engine_assignment).
from neurorave.models.runtime.engine_prepare import engine_assignment
print(json.dumps({
    "engine": engine.kind, "provider": engine.provider, "notes": engine.notes,
    "with_prior": prior is not None, "frames_per_call": dec.spec.frames_per_call,
    "call_ns": times[:n].tolist(),
    "import_s": imported - start, "load_first_frame_s": first - loaded,
    "peak_rss_mb": peak_rss / 1024.0,
    "rss_before_load_mb": rss_before / 1024.0,
    "assignment": engine_assignment(engine, threads),
}))
""".replace("WARMUP_CALLS", str(WARMUP_CALLS)).replace("MIN_CALLS", str(MIN_CALLS))


def _run_child(path: str, kind: str, threads: int, seconds: float) -> Dict[str, Any]:
    result = subprocess.run([sys.executable, "-c", _CHILD, path, kind, str(threads),
                             str(seconds)], capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise UserError(f"measuring {path} on {kind} failed: {last}")
    figures: Dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


def _merge(rounds: List[Dict[str, Any]]) -> Dict[str, Any]:
    """One set of figures from several fresh-process rounds: times pooled, load time and
    RSS those of the first round (each round's process is as fresh as the first)."""
    figures = {k: v for k, v in rounds[0].items() if k != "call_ns"}
    calls = np.concatenate([np.asarray(r["call_ns"], dtype=np.float64) for r in rounds])
    per_frame_ms = calls / 1e6 / figures["frames_per_call"]
    figures.update({
        "calls": int(len(calls)), "rounds": len(rounds),
        "p50_ms": float(np.percentile(per_frame_ms, 50)),
        "p99_ms": float(np.percentile(per_frame_ms, 99)),
        "max_ms": float(per_frame_ms.max()), "mean_ms": float(per_frame_ms.mean()),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in rounds),
    })
    return figures


def _add_rates(figures: Dict[str, Any], path: str) -> Dict[str, Any]:
    bundle = load_bundle(path, verify_files=False)
    frame_seconds = bundle.frame_size / bundle.sample_rate
    figures["realtime_factor"] = frame_seconds / (figures["mean_ms"] / 1e3)
    figures["realtime_factor_p99"] = frame_seconds / (figures["p99_ms"] / 1e3)
    macs = bundle.graphs["decoder"].macs_per_frame
    if macs is not None and "prior" in bundle.graphs:
        macs += bundle.graphs["prior"].macs_per_frame or 0
    if macs is not None:
        figures["macs_per_frame"] = macs
        figures["gmacs_per_audio_second"] = macs / frame_seconds / 1e9
        figures["achieved_gmacs_per_second"] = macs / (figures["mean_ms"] / 1e3) / 1e9
    return figures


def measure(path: str, kind: str, threads: int, seconds: float) -> Dict[str, Any]:
    """One bundle on one engine kind, in a fresh process."""
    figures = _run_child(path, kind, threads, seconds)
    if "unavailable" in figures:
        return figures
    return _add_rates(_merge([figures]), path)


def measure_pair(path: str, ref_path: Optional[str], kind: str, threads: int,
                 seconds: float, rounds: int = ROUNDS
                 ) -> Tuple[Dict[str, Any], Optional[Dict[str, Any]]]:
    """The bundle and the reference in alternating rounds (each a fresh process), so a
    machine that gets busier or quieter meanwhile weighs on both alike."""
    paths = [path] + ([ref_path] if ref_path else [])
    got: Dict[str, List[Dict[str, Any]]] = {p: [] for p in paths}
    for _ in range(rounds):
        for p in paths:
            figures = _run_child(p, kind, threads, seconds / rounds)
            if "unavailable" in figures:
                return figures, None
            got[p].append(figures)
    merged = {p: _add_rates(_merge(r), p) for p, r in got.items()}
    return merged[path], merged.get(ref_path) if ref_path else None


def same_rate_ratio(bundle: Dict[str, Any], ref: Dict[str, Any], bundle_rate: int,
                    ref_rate: int) -> Dict[str, float]:
    """Bundle over reference, the reference taken at the bundle's sample rate: the same
    graph at another rate does the same work per frame, for rate/ref_rate times the
    frames per audio second (its real-time factor divides by that, its MACs per audio
    second multiply)."""
    scale = bundle_rate / ref_rate
    ratio = {"realtime_factor": bundle["realtime_factor"] / (ref["realtime_factor"] / scale),
             "p50_ms": bundle["p50_ms"] / ref["p50_ms"]}
    if "gmacs_per_audio_second" in bundle and "gmacs_per_audio_second" in ref:
        ratio["macs_per_audio_second"] = (bundle["gmacs_per_audio_second"]
                                          / (ref["gmacs_per_audio_second"] * scale))
    return ratio


def _describe(path: str) -> Dict[str, Any]:
    bundle = load_bundle(path)
    return {"path": path, "name": bundle.name, "sample_rate": bundle.sample_rate,
            "frame_size": bundle.frame_size, "frame_ms": bundle.latency_ms,
            "macs_per_frame": bundle.graphs["decoder"].macs_per_frame}


def _kinds(engine: str) -> List[str]:
    if engine == "auto":
        return list(KINDS)
    if engine not in KINDS:
        raise UserError(f"unknown engine '{engine}' (choose from auto, {', '.join(KINDS)})")
    return [engine]


def max_threads() -> int:
    """More threads than this only oversubscribes the cores (and a huge number makes the
    engine spawn threads until the machine stalls)."""
    return 4 * (os.cpu_count() or 4)


def bench(path: str, engine: str = "auto", threads: int = 1, seconds: float = 3.0,
          reference: Optional[str] = None) -> Dict[str, Any]:
    if threads < 1:
        raise UserError(f"--threads must be >= 1, got {threads}")
    if threads > max_threads():
        raise UserError(f"--threads {threads}: at most {max_threads()} here "
                        f"(4 per CPU core)")
    if seconds <= 0:
        raise UserError(f"--seconds must be positive, got {seconds}")
    report: Dict[str, Any] = {"bundle": _describe(path), "threads": threads, "engines": {},
                              "skipped": {}}
    if reference is not None and not os.path.isfile(os.path.join(reference, "model.json")):
        # Only the default (cached) reference is made on the way: a path the user typed
        # that holds no bundle is a mistake, not a place to export into.
        raise UserError(f"--reference {reference}: no bundle there (no model.json); make it "
                        f"with `{_make_command(reference)}`, or leave --reference out to use "
                        "the cached one")
    ref_path = ensure_reference(reference or reference_path())
    report["reference"] = _describe(ref_path) if ref_path else None
    for kind in _kinds(engine):
        figures, ref = measure_pair(path, ref_path, kind, threads, seconds)
        if "unavailable" in figures:
            report["skipped"][kind] = figures["unavailable"]
            continue
        entry: Dict[str, Any] = {"bundle": figures}
        if ref is not None:
            entry["reference"] = ref
            entry["ratio"] = same_rate_ratio(figures, ref, report["bundle"]["sample_rate"],
                                             report["reference"]["sample_rate"])
        report["engines"][kind] = entry
    if not report["engines"]:
        raise UserError("no engine could run the bundle here: " + "; ".join(
            f"{k}: {v}" for k, v in report["skipped"].items()))
    return report


def _row(label: str, f: Dict[str, Any]) -> str:
    macs = f.get("gmacs_per_audio_second")
    macs_text = f"{macs:8.3f}" if macs is not None else "       ?"
    return (f"  {label:<10} {f['p50_ms']:8.3f} {f['p99_ms']:8.3f} {f['max_ms']:8.3f} "
            f"{f['realtime_factor']:8.1f}x {macs_text} {f['peak_rss_mb']:8.0f} "
            f"{f['load_first_frame_s']:7.2f}")


def format_report(report: Dict[str, Any]) -> str:
    b = report["bundle"]
    lines = [f"bundle {b['name']}: {b['frame_size']} samples/frame at {b['sample_rate']} Hz "
             f"({b['frame_ms']:.1f} ms), {report['threads']} thread(s)"]
    ref = report["reference"]
    if ref:
        lines.append(f"reference {ref['name']}: {ref['frame_size']} samples/frame at "
                     f"{ref['sample_rate']} Hz ({ref['frame_ms']:.1f} ms), random weights")
    else:
        lines.append("reference: missing (see the note above), no ratios")
    for kind, entry in report["engines"].items():
        f = entry["bundle"]
        what = "prior + decoder" if f.get("with_prior") else "decoder"
        lines.append(f"{kind} ({f['provider']}), {what}, {f['calls']} calls:")
        if f.get("assignment"):
            from neurorave.models.runtime.engine_prepare import describe

            lines.append(f"  runs on: {describe(f['assignment'])}")
        lines.append(f"  {'':<10} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'RT x':>9} "
                     f"{'GMAC/s':>8} {'RSS MB':>8} {'load s':>7}")
        lines.append(_row("bundle", f))
        if "reference" in entry:
            lines.append(_row("reference", entry["reference"]))
            r = entry["ratio"]
            extra = (f", MACs per audio second {r['macs_per_audio_second']:.4f}x the reference"
                     if "macs_per_audio_second" in r else "")
            rate = b["sample_rate"]
            at = (f" (the reference taken at {rate} Hz)" if ref and rate != ref["sample_rate"]
                  else "")
            lines.append(f"  ratio: real-time factor {r['realtime_factor']:.2f}x the "
                         f"reference's{extra}{at}")
    for kind, why in report["skipped"].items():
        lines.append(f"{kind}: skipped ({why})")
    lines.append("GMAC/s = multiply-accumulates per second of audio; load s = bundle load "
                 "+ first frame (per-engine process, import excluded); bundle and reference "
                 f"alternate in {ROUNDS} rounds of fresh processes")
    return "\n".join(lines)


def main(args: Any) -> int:
    report = bench(args.bundle, args.engine, args.threads, args.seconds, args.reference)
    print(json.dumps(report, indent=1) if args.json else format_report(report))
    return 0
