"""`neurorave train --config NAME|FILE --data DATA --out RUN [--steps N] [--devices N]
[--resume] [--seed S] [--encoder-from RUN]`: the command handler (see the package
docstring for the run folder).

--devices N: N GPUs with DDP when CUDA is present (bf16-mixed, or 16-mixed without bf16);
without CUDA, N CPU processes with DDP over gloo (for testing the distributed path).
"""
from __future__ import annotations

import argparse
import json
import logging
import warnings
from pathlib import Path
from typing import Optional, Sequence

from neurorave.common.errors import UserError, first_line


def _devices(requested: Optional[int]):
    import torch

    n = 1 if requested is None else requested
    if n < 1:
        raise UserError(f"--devices must be >= 1, got {n}")
    if torch.cuda.is_available():
        if n > torch.cuda.device_count():
            raise UserError(f"--devices {n}: only {torch.cuda.device_count()} GPU(s) here")
        precision = "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
        return "gpu", n, precision, "nccl"
    return "cpu", n, "32-true", "gloo"


def _resume_step(ckpt: Path) -> int:
    import torch

    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        return int(state.get("neurorave", {}).get("completed_steps", 0))
    except Exception as exc:  # torch's unpickler fails in many ways; each means: damaged
        raise UserError(f"{ckpt}: damaged or truncated checkpoint ({first_line(exc, 160)}); "
                        "resume from an earlier one by copying it over last.ckpt, or start a "
                        "new run") from None


def build_trainer(cfg, run_dir: Path, devices: Optional[int], remaining: int,
                  progress: bool = True, extra_callbacks: Sequence = ()):
    import pytorch_lightning as pl
    from neurorave.models.training.callbacks import StepCheckpoint
    from pytorch_lightning.callbacks import TQDMProgressBar
    from pytorch_lightning.loggers import TensorBoardLogger
    from pytorch_lightning.strategies import DDPStrategy

    accelerator, n, precision, backend = _devices(devices)
    if cfg.training.precision != "auto":
        precision = cfg.training.precision
    strategy = DDPStrategy(find_unused_parameters=True, process_group_backend=backend) \
        if n > 1 else "auto"
    callbacks = [StepCheckpoint(run_dir, cfg.training.checkpoint_every), *extra_callbacks]
    if progress:
        callbacks.append(TQDMProgressBar(refresh_rate=max(1, min(20, remaining // 50))))
    return pl.Trainer(
        accelerator=accelerator, devices=n, strategy=strategy, precision=precision,
        max_epochs=-1, max_steps=-1,  # the module stops itself at training.steps
        val_check_interval=max(1, min(cfg.training.validate_every, remaining)),
        check_val_every_n_epoch=None, num_sanity_val_steps=0,
        logger=TensorBoardLogger(save_dir=str(run_dir), name="logs", version=""),
        callbacks=callbacks, enable_checkpointing=False, enable_progress_bar=progress,
        enable_model_summary=progress, use_distributed_sampler=False,
        deterministic=True if accelerator == "cpu" else "warn",
        default_root_dir=str(run_dir),
    )


def _take_encoder(model, cfg, source: Path, run_dir: Path) -> None:
    """`model` with the encoder and fader of the run at `source`, at the step where the
    encoder stops learning: its decoder then trains anew on latents that do not move, so
    a prior trained on them stays valid. The source's sessions up to that step go into
    this run's history (what its encoder cost), each marked with where it was run."""
    import torch
    from neurorave.models.training.callbacks import HISTORY_FILE, read_history
    from neurorave.models.training.run import load_run

    steps = cfg.training.encoder_steps
    if steps <= 0:
        raise UserError("--encoder-from needs training.encoder_steps > 0 (the step at "
                        "which the encoder stops learning) in the configuration")
    done = _resume_step(source / "checkpoints" / "last.ckpt") \
        if (source / "checkpoints" / "last.ckpt").exists() else 0
    if done < steps:
        raise UserError(f"--encoder-from {source}: its encoder is still learning (step "
                        f"{done} of training.encoder_steps {steps})")
    theirs = load_run(source).module
    for part in ("encoder", "latent_discriminator"):
        try:
            getattr(model, part).load_state_dict(getattr(theirs, part).state_dict())
        except RuntimeError as exc:
            raise UserError(f"--encoder-from {source}: its {part} does not fit this "
                            f"configuration ({first_line(exc, 160)})") from None
    for name in ("attr_min", "attr_max", "bin_edges"):
        if not torch.equal(getattr(model, name), getattr(theirs, name)):
            raise UserError(f"--encoder-from {source}: its attribute stats differ from "
                            "this run's (train it on the same dataset)")
    model.completed_steps = steps  # on_train_start freezes the encoder from there
    sessions = []
    for session in read_history(source):
        if int(session.get("first_step", 0)) >= steps:
            continue
        part = dict(session, encoder_from=str(source.resolve()))
        if int(part.get("last_step", 0)) > steps:  # its decoder-only steps are not this run's
            # (their wall time taken in proportion)
            span = int(part["last_step"]) - int(part["first_step"])
            part["wall_s"] = round(float(part.get("wall_s", 0.0)) *
                                   (steps - int(part["first_step"])) / max(span, 1), 1)
            part["last_step"] = steps
        sessions.append(part)
    (run_dir / HISTORY_FILE).write_text(json.dumps(sessions, indent=1) + "\n",
                                        encoding="utf-8")


def train(config: str, data: str, out: str, steps: Optional[int] = None,
          devices: Optional[int] = None, resume: bool = False, seed: int = 0,
          progress: bool = True, callbacks: Sequence = (),
          encoder_from: Optional[str] = None):
    """Train (or resume) a run; returns the trained module. `callbacks`: extra Lightning ones."""
    import pytorch_lightning as pl
    import torch
    from neurorave.models.config import load_config, save_config
    from neurorave.models.training.allocator import keep_freed_memory
    from neurorave.models.training.data import StoreDataModule
    from neurorave.models.training.module import FaderRave
    from neurorave.models.training.run import CONFIG_FILE, DATASET_FILE
    from neurorave.models.training.stats import resolve_stats

    keep_freed_memory()
    run_dir = Path(out)
    last = run_dir / "checkpoints" / "last.ckpt"
    start = 0
    if resume and encoder_from:
        raise UserError("--encoder-from starts a new run; --resume continues one: "
                        "give one of them")
    if resume:
        if not last.exists():
            raise UserError(f"{run_dir}: nothing to resume (no checkpoints/last.ckpt)")
        cfg = load_config(run_dir / CONFIG_FILE)  # the run's own configuration
        start = _resume_step(last)  # before any work: a damaged checkpoint stops here
    else:
        if last.exists():
            raise UserError(f"{run_dir}: already holds a training run; pass --resume to "
                            "continue it or choose another --out")
        cfg = load_config(config)
    if steps is not None:
        if steps < 1:
            raise UserError(f"--steps must be >= 1, got {steps}")
        cfg.training.steps = steps
    datamodule = StoreDataModule(data, cfg, seed)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{run_dir}: cannot create the run folder ({exc.strerror})") from None
    save_config(cfg, run_dir / CONFIG_FILE)
    stats = resolve_stats(datamodule.dataset, cfg, run_dir)
    (run_dir / DATASET_FILE).write_text(json.dumps(
        {"path": str(Path(data).resolve()), "manifest": datamodule.dataset.manifest},
        indent=2) + "\n", encoding="utf-8")
    if start >= cfg.training.steps:
        raise UserError(f"{run_dir}: already trained {start} steps; ask for more with --steps")

    pl.seed_everything(seed, workers=True, verbose=False)
    model = FaderRave(cfg, stats, seed=seed, total_steps=cfg.training.steps)
    if encoder_from:
        _take_encoder(model, cfg, Path(encoder_from), run_dir)
        start = model.completed_steps
        if start >= cfg.training.steps:
            raise UserError(f"--encoder-from: the run would start at step {start}; "
                            "ask for more with --steps")
    trainer = build_trainer(cfg, run_dir, devices, cfg.training.steps - start, progress,
                            callbacks)
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    threads = torch.get_num_threads()
    if cfg.training.cpu_threads and not torch.cuda.is_available():
        torch.set_num_threads(cfg.training.cpu_threads)
    with warnings.catch_warnings():
        # Batches are a function of the step (data.py), so mid-epoch resumption is exact.
        warnings.filterwarnings("ignore", ".*resuming from a checkpoint that ended before.*")
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        try:
            trainer.fit(model, datamodule=datamodule, ckpt_path=str(last) if resume else None)
        finally:  # Lightning switches this on process-wide; give the caller its setting back
            torch.use_deterministic_algorithms(was_deterministic)
            torch.set_num_threads(threads)
    return model


def main(args: argparse.Namespace) -> int:
    from neurorave.models.prior.train import is_prior_config
    from neurorave.models.prior.train import main as prior_main

    if is_prior_config(args.config):
        return prior_main(args)
    if getattr(args, "source", None):
        raise UserError("--source names the F-RAVE run a prior learns from; "
                        "use it with --config prior")
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    train(args.config, args.data, args.out, args.steps, args.devices, args.resume, args.seed,
          encoder_from=getattr(args, "encoder_from", None))
    return 0
