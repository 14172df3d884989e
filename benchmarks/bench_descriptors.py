"""Speed of the descriptor core: seconds to describe one hour of 16 kHz audio, one core.

    .venv/bin/python benchmarks/bench_descriptors.py [--minutes 5] [--hops 256 64 1024]
        [--sr 16000] [--torch]

Pins itself to one CPU and one thread (like `taskset -c 0` with OMP/MKL/OpenBLAS at one
thread), synthesises varied audio (harmonic notes with glides, noise bursts, silences),
describes it at each hop and scales the time to one hour. The goal is under 60 s per
hour at 16 kHz. The figure is the process's CPU time (one thread, so it is the time one
core needs, not inflated by other jobs on a shared machine); the wall time is shown too.
`--torch` also times `descriptors_torch.compute_batch` on the CPU.
"""
import os

for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402


def synth(seconds: float, sr: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.zeros(int(seconds * sr), dtype=np.float32)
    pos = 0
    while pos < len(out):
        n = int(rng.uniform(0.2, 2.0) * sr)
        kind = rng.integers(0, 3)
        t = np.arange(n) / sr
        if kind == 0:  # harmonic note with a glide
            f0 = rng.uniform(50, 1500) * 2 ** (rng.uniform(-1, 1) * t / t[-1])
            phase = 2 * np.pi * np.cumsum(f0) / sr
            seg = sum(np.sin(k * phase) / k for k in range(1, 8)) * 0.2
        elif kind == 1:
            seg = rng.standard_normal(n) * rng.uniform(0.01, 0.3)
        else:
            seg = np.zeros(n)
        m = min(n, len(out) - pos)
        out[pos:pos + m] = seg[:m]
        pos += m
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--sr", type=int, default=16000)
    parser.add_argument("--hops", type=int, nargs="+", default=[256, 64, 1024])
    parser.add_argument("--torch", action="store_true")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    from neurorave.models import descriptors

    audio = synth(args.minutes * 60, args.sr)
    results = {}
    for hop in args.hops:
        descriptors.compute(audio[: args.sr * 5], args.sr, hop)  # warm up
        start, cpu_start = time.perf_counter(), time.process_time()
        curves = descriptors.compute(audio, args.sr, hop)
        took, wall = time.process_time() - cpu_start, time.perf_counter() - start
        assert all(np.isfinite(v).all() for v in curves.values())
        per_hour = took * 60 / args.minutes
        results[f"numpy_hop{hop}_s_per_hour"] = round(per_hour, 2)
        print(f"numpy  sr={args.sr} hop={hop:5d}: {took:6.2f} s CPU ({wall:.2f} s wall) for "
              f"{args.minutes:g} min -> {per_hour:6.1f} s per hour of audio "
              f"({3600 / per_hour:5.0f}x real time)")
    if args.torch:
        import torch
        from neurorave.models import descriptors_torch

        torch.set_num_threads(1)
        batch = torch.from_numpy(audio[: len(audio) // 16 * 16].reshape(16, -1))
        for hop in args.hops:
            start = time.process_time()
            descriptors_torch.compute_batch(batch, args.sr, hop)
            took = time.process_time() - start
            per_hour = took * 60 / args.minutes
            results[f"torch_hop{hop}_s_per_hour"] = round(per_hour, 2)
            print(f"torch  sr={args.sr} hop={hop:5d}: {per_hour:6.1f} s per hour (batch 16, "
                  "float64, CPU)")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
