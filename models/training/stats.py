"""Attribute statistics used for normalisation ([-1, 1] by min/max) and the fader's 16 bins.

The dataset store keeps stats for curves at its own hop (256 by default). The curves'
analysis window grows with the hop (>= 2 x hop), so the ranges at the model's hop can
differ from the stored ones. Decision: when the store's hop equals the model's hop the
store's stats are used as they are; otherwise they are recomputed once, at training
start, from the train split at the model's hop (up to `training.stats_items` evenly
spaced chunks) and written to the run folder's stats.json, which a resumed run and the
exporter read back.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Sequence, Tuple

import numpy as np
import torch
from neurorave.common.errors import UserError
from neurorave.models.config import LATENT_BINS, Config
from neurorave.models.descriptors import F0_MIN_HZ
from neurorave.models.descriptors_torch import compute_batch

STATS_FILE = "stats.json"


def _summary(values: np.ndarray) -> Dict[str, Any]:
    values = values.astype(np.float64).reshape(-1)
    edges = np.quantile(values, np.linspace(0.0, 1.0, LATENT_BINS + 1))
    edges[0], edges[-1] = values.min(), values.max()
    return {"min": float(values.min()), "max": float(values.max()),
            "mean": float(values.mean()), "std": float(values.std()),
            "bins": [float(e) for e in np.maximum.accumulate(edges)], "frames": int(values.size)}


def recompute_stats(audio: np.ndarray, sr: int, hop: int, names: Sequence[str],
                    max_items: int, batch: int = 16) -> Dict[str, Dict[str, Any]]:
    """Stats of `names` at `hop` over up to `max_items` evenly spaced rows of `audio` [N, T]."""
    n = len(audio)
    rows = np.unique(np.linspace(0, n - 1, min(n, max_items)).round().astype(int))
    curves = []
    for start in range(0, len(rows), batch):
        chunk = torch.from_numpy(np.asarray(audio[rows[start:start + batch]], dtype=np.float32))
        curves.append(compute_batch(chunk, sr, hop, names).numpy())
    stacked = np.concatenate(curves)  # [N', A, F]
    return {name: _summary(stacked[:, i]) for i, name in enumerate(names)}


def resolve_stats(dataset, cfg: Config, run_dir: Path) -> Dict[str, Any]:
    """The stats for this run: read from the run folder, else from the store or recomputed."""
    path = run_dir / STATS_FILE
    names = list(cfg.model.attributes)
    hop = cfg.model.hop
    if path.exists():
        saved = json.loads(path.read_text(encoding="utf-8"))
        if saved.get("hop") == hop and all(n in saved["attributes"] for n in names):
            return saved
    if dataset.hop == hop and all(n in dataset.stats for n in names):
        attributes = {n: dataset.stats[n] for n in names}
        source = "dataset"
    else:
        train = dataset.split("train")
        attributes = recompute_stats(train.audio, dataset.sr, hop, names,
                                     cfg.training.stats_items)
        source = f"recomputed at hop {hop} from {min(len(train), cfg.training.stats_items)} " \
                 "train chunks"
    for n in names:
        if len(attributes[n]["bins"]) != LATENT_BINS + 1:
            raise UserError(f"{dataset.path}: stats for {n!r} need {LATENT_BINS + 1} bin edges")
    stats = {"hop": hop, "sr": dataset.sr, "source": source, "dataset": str(dataset.path),
             "attributes": attributes}
    path.write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    return stats


def stats_tensors(stats: Dict[str, Any], names: Sequence[str]) -> Dict[str, torch.Tensor]:
    """lo, hi [A] and the 15 inner bin edges [A, 15] as float32 tensors."""
    attrs = stats["attributes"]
    lo = torch.tensor([attrs[n]["min"] for n in names], dtype=torch.float32)
    hi = torch.tensor([attrs[n]["max"] for n in names], dtype=torch.float32)
    edges = torch.tensor([attrs[n]["bins"][1:-1] for n in names], dtype=torch.float32)
    return {"attr_min": lo, "attr_max": hi, "bin_edges": edges}


# Pitch is heard on a log scale: f0 conditions the decoder as log(Hz), so that every
# semitone is the same step of the input wherever it lies (linear Hz squeezes the low
# octaves into a sliver of [-1, 1]). Floored at YIN's lowest f0 (unvoiced starts hold 0).
# Loudness is heard in dB, and with `model.log_rms` rms conditions the decoder as
# log(rms): linearly, a kit whose hits peak at 0.26 leaves most frames (median 0.01) in
# the bottom tenth of [-1, 1], where a 20 dB error costs the control loss almost nothing.
# Floored at -80 dBFS, silence for every purpose here.
LOG_FLOOR_HZ = F0_MIN_HZ
RMS_FLOOR = 1e-4


def log_floors(names: Sequence[str], log_rms: bool = False) -> torch.Tensor:
    """[A] the floor of each log-scaled attribute, 0 for a linear one."""
    floors = {"f0": LOG_FLOOR_HZ, "rms": RMS_FLOOR if log_rms else 0.0}
    return torch.tensor([floors.get(n, 0.0) for n in names], dtype=torch.float32)


def log_range(lo: torch.Tensor, hi: torch.Tensor, floor: float = LOG_FLOOR_HZ
              ) -> Tuple[float, float]:
    """log(value) at -1 and +1 of a log-scaled input (what `normalise_curves` maps there)."""
    return (float(np.log(max(float(lo), floor))), float(np.log(max(float(hi), floor))))


def normalise_curves(raw: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor,
                     floor: torch.Tensor, clip: bool = True) -> torch.Tensor:
    """Raw curves [B, A, T] -> [-1, 1] by min/max [A], on a log scale where `floor` [A]
    (from `log_floors`) is set. The training module and the exported decoder both use
    this, so they cannot drift. `clip=False` keeps readings past the range (and their
    gradient)."""
    log = floor > 0
    safe = torch.where(log, floor, torch.ones_like(floor))  # log() stays finite off the mask

    def scale(x: torch.Tensor, f: torch.Tensor, on: torch.Tensor) -> torch.Tensor:
        return torch.where(on, torch.log(torch.maximum(x, f)), x)

    lo, hi = lo[None, :, None], hi[None, :, None]
    log, safe = log[None, :, None], safe[None, :, None]
    lo_s, hi_s = scale(lo, safe, log), scale(hi, safe, log)
    out = 2 * (scale(raw, safe, log) - lo_s) / (hi_s - lo_s).clamp_min(1e-8) - 1
    return out.clamp(-1, 1) if clip else out
