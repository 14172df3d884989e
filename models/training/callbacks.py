"""Checkpoints every N steps: Lightning's full checkpoint (to resume) and a plain
state_dict beside it that loads with `torch.load(path, weights_only=True)` (to export)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytorch_lightning as pl
import torch

KEEP_CHECKPOINTS = 3  # full Lightning checkpoints kept besides last.ckpt; weights are all kept


class StepCheckpoint(pl.Callback):
    def __init__(self, run_dir: Path, every: int):
        self.checkpoints = Path(run_dir) / "checkpoints"
        self.weights = Path(run_dir) / "weights"
        self.every = every

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
            weights = self.weights / f"step-{step:08d}.pt"
            torch.save(state, weights)
            shutil.copyfile(weights, self.weights / "last.pt")
            old = sorted(self.checkpoints.glob("step-*.ckpt"))[:-KEEP_CHECKPOINTS]
            for path in old:
                path.unlink()
        trainer.strategy.barrier()
