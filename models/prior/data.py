"""The prior's training data: every dataset chunk as a sequence of joint frames.

A frame is the F-RAVE encoder's latent mean in PCA coordinates (the same PCA the
bundle bakes in: fitted exactly as `neurorave export` fits it) followed by the
attribute values in their raw units, measured at the model's hop. `Standardiser` maps
them to zero mean, unit spread per dimension for the network (and the export bakes it
in). Where the run reads rms in dB (`model.log_rms`) the prior models log(rms) too: its
Gaussians then never reach below silence, and a loud hit and a quiet tail are as far
apart as the ear hears them.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import numpy as np
import torch
from neurorave.firmware.errors import UserError
from neurorave.models.descriptors_torch import compute_batch
from neurorave.models.export.pca import fit_pca, latent_means
from neurorave.models.training.stats import RMS_FLOOR


def export_pca(run, train_audio: np.ndarray) -> Dict[str, np.ndarray]:
    """The PCA `neurorave export` will bake into the bundle (same rows, same seed)."""
    torch.manual_seed(0)
    return fit_pca(latent_means(run.module.encoder, train_audio, run.config.model.hop))


def encode_split(run, audio: np.ndarray, pca: Dict[str, np.ndarray], batch: int = 8
                 ) -> np.ndarray:
    """Chunks [N, T] -> joint frames [N, F, L + A] (PCA coordinates, raw attributes)."""
    m = run.config.model
    usable = (audio.shape[1] // m.hop) * m.hop
    if len(audio) == 0 or usable == 0:
        raise UserError("the split has no chunk as long as one latent frame")
    mean, components = pca["mean"], pca["components"]
    rows = []
    with torch.no_grad():
        for start in range(0, len(audio), batch):
            x = torch.from_numpy(np.array(audio[start:start + batch, :usable], np.float32))
            z, _ = run.module.encoder(x)
            coords = (z.double().numpy().transpose(0, 2, 1) - mean) @ components.T
            curves = compute_batch(x, m.sample_rate, m.hop, list(m.attributes),
                                   dtype=torch.float64).numpy().transpose(0, 2, 1)
            frames = min(coords.shape[1], curves.shape[1])
            rows.append(np.concatenate([coords[:, :frames], curves[:, :frames]], -1))
    return np.concatenate(rows).astype(np.float32)


class Standardiser:
    """Raw frames <-> the network's units: log first on the `log` dimensions (floored at
    RMS_FLOOR, -80 dBFS), then zero mean and unit spread per dimension."""

    def __init__(self, mean: np.ndarray, std: np.ndarray,
                 log: Optional[Sequence[int]] = None):
        self.mean = np.asarray(mean, np.float64)
        self.std = np.maximum(np.asarray(std, np.float64), 1e-6)
        self.log = np.zeros(len(self.mean), bool)
        self.log[list(log or [])] = True

    @classmethod
    def fit(cls, frames: np.ndarray, log: Optional[Sequence[int]] = None) -> Standardiser:
        flat = cls(np.zeros(frames.shape[-1]), np.ones(frames.shape[-1]), log).warp(
            frames.reshape(-1, frames.shape[-1]).astype(np.float64))
        return cls(flat.mean(0), flat.std(0), log)

    @classmethod
    def from_state(cls, state: Dict[str, Any]) -> Standardiser:
        return cls(state["mean"], state["std"], state.get("log", []))

    def warp(self, frames: np.ndarray) -> np.ndarray:
        return np.where(self.log, np.log(np.maximum(frames, RMS_FLOOR)), frames)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        return ((self.warp(frames) - self.mean) / self.std).astype(np.float32)

    def raw(self, values: np.ndarray) -> np.ndarray:
        """The network's units -> raw frames (the inverse of calling it)."""
        x = np.asarray(values, np.float64) * self.std + self.mean
        return np.where(self.log, np.exp(np.where(self.log, x, 0.0)), x)

    def start(self) -> np.ndarray:
        """The raw frame a phrase starts from: the training mean in the network's units."""
        return self.raw(np.zeros_like(self.mean))

    def state(self) -> Dict[str, Any]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist(),
                "log": np.flatnonzero(self.log).tolist()}
