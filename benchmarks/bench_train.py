"""Training throughput: steps/s of a configuration (default `small`) on this machine.

Runs the real training path (`neurorave.models.training.cli.train`, Lightning) on a
synthetic dataset, once in phase 1 (reconstruction + fader) and once in phase 2
(adversarial critics), and reports the median step time after a warm-up.

    nice .venv/bin/python benchmarks/bench_train.py [--config small] [--steps 12]
        [--warmup 3] [--threads 2] [--devices 1] [--phases 1,2] [--json]
"""
import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from neurorave.models.config import load_config
from neurorave.models.datastore import write_dataset
from neurorave.models.training.cli import train


class StepTimer(pl.Callback):
    def __init__(self):
        self.times = []
        self._t0 = 0.0

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.times.append(time.perf_counter() - self._t0)


def synthetic_dataset(folder: Path, sr: int, chunk: int, n: int = 24) -> Path:
    rng = np.random.default_rng(0)
    t = np.arange(chunk) / sr
    rows = [rng.uniform(0.1, 0.8) * np.sin(2 * np.pi * rng.uniform(80, 2000) * t)
            + 0.02 * rng.standard_normal(chunk) for _ in range(n)]
    return write_dataset(folder / "data", np.array(rows, dtype=np.float32), sr,
                         [f"b{i}" for i in range(n)])


def measure(config: str, phase: int, data: Path, folder: Path, steps: int, warmup: int,
            devices: int) -> dict:
    override = folder / f"phase{phase}.toml"
    source = config if config.endswith(".toml") else f'"{config}"'
    extends = f'extends = {json.dumps(str(Path(config).resolve()))}' \
        if config.endswith(".toml") else f"extends = {source}"
    override.write_text(f"""{extends}
[training]
adversarial_start = {0 if phase == 2 else 10 ** 9}
checkpoint_every = {10 ** 9}
validate_every = {10 ** 9}
""")
    timer = StepTimer()
    train(str(override), str(data), str(folder / f"run{phase}"), steps=warmup + steps,
          devices=devices, progress=False, callbacks=[timer])
    step_s = statistics.median(timer.times[warmup:])
    return {"phase": phase, "median_step_s": step_s, "steps_per_s": 1.0 / step_s}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="small")
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--devices", type=int, default=1)
    p.add_argument("--phases", default="1,2", help="which phases to time (1, 2 or 1,2)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else \
        f"CPU, {args.threads} thread(s)"
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = synthetic_dataset(folder, cfg.model.sample_rate, cfg.training.chunk)
        for phase in sorted({int(x) for x in args.phases.split(",")}):
            results.append(measure(args.config, phase, data, folder, args.steps, args.warmup,
                                   args.devices))
    report = {"config": cfg.name, "device": device, "batch_size": cfg.training.batch_size,
              "chunk": cfg.training.chunk, "results": results}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{cfg.name} on {device}: batch {cfg.training.batch_size} x "
              f"{cfg.training.chunk} samples")
        for r in results:
            name = "phase 1 (reconstruction + fader)" if r["phase"] == 1 else \
                "phase 2 (adversarial)"
            print(f"  {name}: {r['steps_per_s']:.3f} steps/s ({r['median_step_s']:.2f} s/step)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
