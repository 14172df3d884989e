"""Checkpoints every N steps: Lightning's full checkpoint (to resume) and a plain
state_dict beside it that loads with `torch.load(path, weights_only=True)` (to export).
Each checkpoint also brings `history.json` up to date: one entry per training session
(steps, wall time, hardware), so that a run resumed across machines says what it used."""
from __future__ import annotations

import json
import os
import platform
import shutil
import time
import uuid
from pathlib import Path
from typing import Any, Dict, List

import pytorch_lightning as pl
import torch
from neurorave.models.training.module import without_critic

KEEP_CHECKPOINTS = 3  # full Lightning checkpoints kept besides last.ckpt; weights are all kept
HISTORY_FILE = "history.json"


def cpu_name() -> str:
    """The processor's model name, and how many cores this machine has."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return f"{cpu} ({os.cpu_count()} cores)"


def hardware(trainer: pl.Trainer) -> str:
    """What this session trains on, in words."""
    if trainer.strategy.root_device.type == "cuda":
        return f"{trainer.world_size} x {torch.cuda.get_device_name(trainer.strategy.root_device)}"
    return (f"{trainer.world_size} CPU process(es) x {torch.get_num_threads()} thread(s), "
            f"{cpu_name()}")


def read_history(run_dir: Path) -> List[Dict[str, Any]]:
    path = Path(run_dir) / HISTORY_FILE
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return data if isinstance(data, list) else []


class StepCheckpoint(pl.Callback):
    def __init__(self, run_dir: Path, every: int):
        self.run_dir = Path(run_dir)
        self.checkpoints = self.run_dir / "checkpoints"
        self.weights = self.run_dir / "weights"
        self.every = every
        self.session: Dict[str, Any] = {}
        self.started = 0.0

    def on_train_start(self, trainer, pl_module) -> None:
        self.started = time.monotonic()
        self.session = {"id": uuid.uuid4().hex[:12],
                        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        "hardware": hardware(trainer), "first_step": pl_module.completed_steps,
                        "last_step": pl_module.completed_steps, "wall_s": 0.0}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = pl_module.completed_steps
        if step % self.every == 0 or step >= pl_module.total_steps:
            self.save(trainer, pl_module, step)

    def save(self, trainer: pl.Trainer, pl_module: pl.LightningModule, step: int) -> None:
        ckpt = self.checkpoints / f"step-{step:08d}.ckpt"
        trainer.save_checkpoint(ckpt)  # every rank calls it; rank 0 writes
        if trainer.is_global_zero:
            shutil.copyfile(ckpt, self.checkpoints / "last.ckpt")
            self.weights.mkdir(parents=True, exist_ok=True)
            state = {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()}
            if pl_module.critic_untrained():
                state = without_critic(state)
            weights = self.weights / f"step-{step:08d}.pt"
            torch.save(state, weights)
            shutil.copyfile(weights, self.weights / "last.pt")
            old = sorted(self.checkpoints.glob("step-*.ckpt"))[:-KEEP_CHECKPOINTS]
            for path in old:
                path.unlink()
            self._write_history(step)
        trainer.strategy.barrier()

    def _write_history(self, step: int) -> None:
        if not self.session:
            return
        self.session.update(last_step=step, wall_s=round(time.monotonic() - self.started, 1))
        # Sessions that a crash cut after this checkpoint's steps are dropped: the run
        # resumes from here, so steps beyond it were never kept.
        history = [s for s in read_history(self.run_dir)
                   if s.get("id") != self.session["id"]
                   and int(s.get("first_step", 0)) < self.session["first_step"]]
        history.append(dict(self.session))
        tmp = self.run_dir / (HISTORY_FILE + ".tmp")
        tmp.write_text(json.dumps(history, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, self.run_dir / HISTORY_FILE)
