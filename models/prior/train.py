"""`neurorave train --config prior|prior-tiny|FILE --source RUN --data DATA --out PRIOR`.

A plain training loop: the prior is a few hundred thousand parameters over short
sequences, so Lightning's machinery would outweigh it. It still checkpoints (resume
with --resume takes the exact next step: batches are a function of the step), logs to
TensorBoard, shows a progress bar, and uses a GPU when there is one.

The prior run folder:
    prior.json          config, source run, dimensions, the PCA and standardisation,
                        held-out NLL against a context-free baseline
    weights/last.pt     the network's state dict
    checkpoints/last.pt network, optimiser and step, for --resume
    logs/               TensorBoard
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np
import torch
from neurorave.common.errors import UserError
from neurorave.models.audibility import AUDIBLE_RMS

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
PRIOR_FILE = "prior.json"
DEFAULTS: Dict[str, Dict[str, Any]] = {
    "prior": {"hidden": 128, "layers": 2, "mixtures": 4},
    "training": {"steps": 20000, "batch_size": 32, "sequence": 64, "learning_rate": 1e-3,
                 "pin_probability": 0.75, "phrase_start_probability": 0.5,
                 "validate_every": 500, "checkpoint_every": 500},
}


def is_prior_config(source: Union[str, Path]) -> bool:
    text = str(source)
    if (CONFIG_DIR / f"{text}.toml").exists():
        return True
    path = Path(text)
    if path.suffix == ".toml" and path.exists():
        return "[prior]" in path.read_text(encoding="utf-8", errors="replace")
    return False


def load_prior_config(source: Union[str, Path]) -> Dict[str, Any]:
    from neurorave.common.toml_reader import tomllib

    path = Path(source) if Path(str(source)).suffix == ".toml" else CONFIG_DIR / f"{source}.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML ({exc})") from None
    cfg: Dict[str, Any] = {"name": str(data.get("name", path.stem))}
    for section, defaults in DEFAULTS.items():
        given = data.get(section, {})
        for key in given:
            if key not in defaults:
                raise UserError(f"{path}: {section}.{key}: unknown key (known: "
                                f"{', '.join(defaults)})")
        cfg[section] = {**defaults, **given}
        for key, value in cfg[section].items():
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise UserError(f"{path}: {section}.{key}: must be a number")
            if key.endswith("_probability"):
                if not 0 <= value <= 1:
                    raise UserError(f"{path}: {section}.{key}: must be between 0 and 1")
            elif value <= 0:
                raise UserError(f"{path}: {section}.{key}: must be a positive number")
    return cfg


ONSET_RISE = 2.0        # and, after the first frame, where rms at least doubles (+6 dB)


def phrase_starts(rms: np.ndarray) -> np.ndarray:
    """[K, 2] (item, frame) pairs where a phrase may begin, from the raw rms [N, F]:
    the first frame of an item that is heard, and every onset (a heard frame whose rms
    at least doubles the previous frame's)."""
    heard = rms >= AUDIBLE_RMS  # a phrase starts with sound
    onset = np.zeros_like(heard)
    onset[:, 0] = heard[:, 0]
    onset[:, 1:] = heard[:, 1:] & (rms[:, 1:] >= ONSET_RISE * rms[:, :-1])
    return np.argwhere(onset)


def window_starts(rng: np.random.Generator, batch: int, items: int, frames: int, window: int,
                  phrase_start_probability: float, onsets: Optional[np.ndarray] = None
                  ) -> Tuple[np.ndarray, np.ndarray]:
    """(item, first frame) of each training window. Gate 1 resets the prior, so some
    windows start where a phrase starts: at an onset from `phrase_starts` (which may lie
    less than a window before the item's end: the frames past it are padding, left out of
    the loss), or without onsets at the item's first frame. The rest start anywhere."""
    which = rng.integers(0, items, batch)
    starts = rng.integers(0, frames - window + 1, batch)
    phrase = rng.random(batch) < phrase_start_probability
    if onsets is not None and len(onsets):
        picked = onsets[rng.integers(0, len(onsets), batch)]
        which = np.where(phrase, picked[:, 0], which)
        starts = np.where(phrase, picked[:, 1], starts)
    else:
        starts[phrase] = 0
    return which, starts


def pin_masks(rng: np.random.Generator, batch: int, latent: int, attrs: int,
              probability: float) -> np.ndarray:
    """[B, D] per-window masks, shaped like play: CV1 pins latent 0, CVs in hold mode (and
    1 V/oct on f0) pin attributes, and now and then other latent dims too."""
    masks = np.zeros((batch, latent + attrs), np.float32)
    pinned = rng.random(batch) < probability
    masks[:, 0] = pinned & (rng.random(batch) < 0.6)
    if latent > 1:
        masks[:, 1:latent] = pinned[:, None] & (rng.random((batch, latent - 1)) < 0.1)
    masks[:, latent:] = pinned[:, None] & (rng.random((batch, attrs)) < 0.5)
    return masks


def shifted(x: torch.Tensor) -> torch.Tensor:
    """The previous frame at each step; a phrase starts from the mean (zero)."""
    return torch.cat([torch.zeros_like(x[:, :1]), x[:, :-1]], 1)


def sequence_nll(net, x: torch.Tensor, mask: torch.Tensor,
                 valid: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Mean NLL per free dimension per frame of standardised sequences x [B, T, D];
    `valid` [B, T] leaves padding frames out."""
    from neurorave.models.prior.net import mixture_nll

    m = mask[:, None, :].expand_as(x)
    logits, mu, log_sigma, _ = net(shifted(x), x, m)
    free = 1 - m
    if valid is not None:
        free = free * valid[:, :, None]
    return mixture_nll(logits, mu, log_sigma, x, free).sum() / free.sum().clamp_min(1)


def baseline_nll(x: np.ndarray) -> float:
    """A context-free baseline: each standardised dimension N(0, 1) (the training frames'
    own mean and spread), per dimension per frame."""
    return float(0.5 * math.log(2 * math.pi) + 0.5 * np.mean(x.astype(np.float64) ** 2))


def train_prior(config: Union[str, Path], data: str, out: str, source: Optional[str],
                steps: Optional[int] = None, resume: bool = False, seed: int = 0,
                progress: bool = True) -> Dict[str, Any]:
    from neurorave.models.datastore import open_dataset
    from neurorave.models.prior.data import Standardiser, encode_split, export_pca
    from neurorave.models.prior.net import PriorNet
    from neurorave.models.training.run import load_run
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    run_dir = Path(out)
    last = run_dir / "checkpoints" / "last.pt"
    if resume:
        if not last.exists():
            raise UserError(f"{run_dir}: nothing to resume (no checkpoints/last.pt)")
        saved = json.loads((run_dir / PRIOR_FILE).read_text(encoding="utf-8"))
        cfg, source = saved["config"], saved["source_run"]
    else:
        if last.exists():
            raise UserError(f"{run_dir}: already holds a prior; pass --resume or another --out")
        if not source:
            raise UserError("a prior is trained on an F-RAVE run: pass --source RUN")
        cfg = load_prior_config(config)
    if steps is not None:
        if steps < 1:
            raise UserError(f"--steps must be >= 1, got {steps}")
        cfg["training"]["steps"] = steps
    t = cfg["training"]
    run = load_run(source)
    m = run.config.model
    dataset = open_dataset(data)
    if dataset.sr != m.sample_rate:
        raise UserError(f"{data}: audio at {dataset.sr} Hz but the run plays at "
                        f"{m.sample_rate} Hz")
    train_split = dataset.split("train")
    valid_split = dataset.split("valid") if len(dataset.split("valid")) else \
        dataset.split("test")
    if len(train_split) == 0:
        raise UserError(f"{data}: the train split is empty")
    pca = export_pca(run, np.asarray(train_split.audio))
    frames = encode_split(run, np.asarray(train_split.audio), pca)
    held_out = encode_split(run, np.asarray(valid_split.audio), pca) if len(valid_split) \
        else frames[-1:]
    scale = Standardiser.fit(frames)
    x_train, x_valid = scale(frames), scale(held_out)
    latent, attrs = m.latent_size, len(m.attributes)
    dims = latent + attrs

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(seed)
    net = PriorNet(dims, int(cfg["prior"]["hidden"]), int(cfg["prior"]["layers"]),
                   int(cfg["prior"]["mixtures"])).to(device)
    opt = torch.optim.Adam(net.parameters(), float(t["learning_rate"]))
    start = 0
    if resume:
        state = torch.load(last, map_location=device, weights_only=True)
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["opt"])
        start = int(state["step"])
        if start >= t["steps"]:
            raise UserError(f"{run_dir}: already trained {start} steps; ask for more with --steps")
    (run_dir / "weights").mkdir(parents=True, exist_ok=True)
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    writer = SummaryWriter(str(run_dir / "logs"))
    window = int(min(t["sequence"], x_train.shape[1]))
    # Phrases start at onsets where rms tells them (raw rms, before standardising); a
    # window from a late onset runs into `window` frames of padding.
    onsets = phrase_starts(frames[..., latent + m.attributes.index("rms")]) \
        if "rms" in m.attributes else None
    padded = np.concatenate([x_train, np.zeros_like(x_train[:, :window])], 1)
    real = np.concatenate([np.ones(x_train.shape[:2], np.float32),
                           np.zeros((len(x_train), window), np.float32)], 1)
    x_all = torch.from_numpy(padded).to(device)
    valid_all = torch.from_numpy(real).to(device)
    x_held = torch.from_numpy(x_valid).to(device)
    summary: Dict[str, Any] = {}

    def save(step: int) -> None:
        torch.save(net.state_dict(), run_dir / "weights" / "last.pt")
        torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "step": step}, last)
        with torch.no_grad():
            net.eval()
            valid = float(sequence_nll(net, x_held, torch.zeros(len(x_held), dims,
                                                                   device=device)))
            net.train()
        summary.update({"step": step, "valid_nll": valid,
                        "baseline_nll": baseline_nll(x_valid)})
        writer.add_scalar("valid/nll", valid, step)
        doc = {"format": "neurorave-prior", "config": cfg, "source_run": str(Path(source)
                                                                            .resolve()),
               "data": str(Path(data).resolve()), "latent_size": latent,
               "attributes": list(m.attributes), "dims": dims,
               "frame_rate_hz": m.sample_rate / m.hop,
               "pca": {"mean": pca["mean"].tolist(), "components": pca["components"].tolist()},
               "standardiser": scale.state(), "metrics": summary,
               "frames": {"train": int(x_train.shape[0] * x_train.shape[1]),
                          "held_out": int(x_valid.shape[0] * x_valid.shape[1])}}
        (run_dir / PRIOR_FILE).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")

    bar = tqdm(range(start, int(t["steps"])), desc="prior", disable=not progress,
               initial=start, total=int(t["steps"]))
    for step in bar:
        rng = np.random.default_rng([seed, step])  # the batch is a function of the step
        items, starts = window_starts(rng, int(t["batch_size"]), len(x_train),
                                      x_train.shape[1], window,
                                      float(t.get("phrase_start_probability", 0.0)), onsets)
        index = torch.from_numpy(starts[:, None] + np.arange(window)[None, :]).to(device)
        rows = torch.from_numpy(items).to(device)[:, None]
        mask = torch.from_numpy(pin_masks(rng, len(items), latent, attrs,
                                          float(t["pin_probability"]))).to(device)
        loss = sequence_nll(net, x_all[rows, index], mask, valid_all[rows, index])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        if step % 10 == 0:
            value = float(loss.detach())
            writer.add_scalar("train/nll", value, step)
            bar.set_postfix(nll=f"{value:.3f}")
        done = step + 1
        if done % int(t["checkpoint_every"]) == 0 or done == int(t["steps"]):
            save(done)
    writer.close()
    return summary


def main(args: Any) -> int:
    summary = train_prior(args.config, args.data, args.out, getattr(args, "source", None),
                          args.steps, args.resume, args.seed)
    print(f"prior: {summary['step']} steps, held-out NLL {summary['valid_nll']:.3f} per "
          f"dimension (context-free baseline {summary['baseline_nll']:.3f})")
    return 0
