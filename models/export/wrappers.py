"""Export wrappers: what the device feeds goes in as is; the graph does the rest.

The decoder graph takes the exposed PCA coordinates and the raw descriptor values
(the units the panel shows) and applies, inside the graph, the run's attribute
normalisation and the inverse PCA before the trained decoder. The encoder graph
returns the exposed PCA coordinates of the latent mean. Both are plain modules of
constant buffers around the trained networks, so `StreamingStep` traces them with
every cache explicit.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np
import torch
from neurorave.models.training.stats import log_floors, normalise_curves
from torch import nn


def _f32(array) -> torch.Tensor:
    return torch.as_tensor(np.asarray(array, dtype=np.float32))


class ExportDecoder(nn.Module):
    """(z_pca [1, k, F], raw attributes [1, A, F], noise) -> audio [1, 1, F * hop]."""

    def __init__(self, decoder: nn.Module, attr_min, attr_max, pca: Dict[str, np.ndarray],
                 exposed: int, names: Optional[Sequence[str]] = None, log_rms: bool = False):
        super().__init__()
        self.decoder = decoder
        self.register_buffer("attr_min", _f32(attr_min))
        self.register_buffer("attr_max", _f32(attr_max))
        self.register_buffer("attr_floor", log_floors(names or [""] * len(attr_min), log_rms))
        # z = mean + components[:k].T @ z_pca: unexposed coordinates are zero (the mean).
        self.register_buffer("basis", _f32(pca["components"][:exposed].T))  # [L, k]
        self.register_buffer("latent_mean", _f32(pca["mean"])[None, :, None])

    def latent(self, z_pca: torch.Tensor) -> torch.Tensor:
        return torch.matmul(self.basis, z_pca) + self.latent_mean

    def normalise(self, raw: torch.Tensor) -> torch.Tensor:
        """The training module's normalisation (min/max to [-1, 1], f0 and maybe rms on a
        log scale)."""
        return normalise_curves(raw, self.attr_min, self.attr_max, self.attr_floor)

    def forward(self, z_pca: torch.Tensor, raw_attributes: torch.Tensor,
                noise: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.latent(z_pca), self.normalise(raw_attributes), noise)


class ExportEncoder(nn.Module):
    """audio [1, 1, F * hop] -> exposed PCA coordinates of the latent mean [1, k, F]."""

    def __init__(self, encoder: nn.Module, pca: Dict[str, np.ndarray], exposed: int):
        super().__init__()
        self.encoder = encoder
        self.register_buffer("projection", _f32(pca["components"][:exposed]))  # [k, L]
        self.register_buffer("latent_mean", _f32(pca["mean"])[None, :, None])

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        mean, _ = self.encoder(audio)
        return torch.matmul(self.projection, mean - self.latent_mean)
