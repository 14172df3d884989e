"""The prior's training data: every dataset chunk as a sequence of joint frames.

A frame is the F-RAVE encoder's latent mean in PCA coordinates (the same PCA the
bundle bakes in: fitted exactly as `neurorave export` fits it) followed by the
attribute values in their raw units, measured at the model's hop. The prior models
these in raw units; `Standardiser` maps them to zero mean, unit spread per dimension
for the network (and the export bakes it in).
"""
from __future__ import annotations

from typing import Any, Dict

import numpy as np
import torch
from neurorave.common.errors import UserError
from neurorave.models.descriptors_torch import compute_batch
from neurorave.models.export.pca import fit_pca, latent_means


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
    def __init__(self, mean: np.ndarray, std: np.ndarray):
        self.mean = np.asarray(mean, np.float64)
        self.std = np.maximum(np.asarray(std, np.float64), 1e-6)

    @classmethod
    def fit(cls, frames: np.ndarray) -> Standardiser:
        flat = frames.reshape(-1, frames.shape[-1]).astype(np.float64)
        return cls(flat.mean(0), flat.std(0))

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        return ((frames - self.mean) / self.std).astype(np.float32)

    def state(self) -> Dict[str, Any]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}
