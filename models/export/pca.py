"""The latent PCA baked into a bundle (as RAVE does): dim 0 = first principal component.

Fitted on the encoder's latent means over the training split. `fidelity` chooses how
many dimensions a bundle exposes: the fewest whose cumulative explained variance
reaches it (RAVE's rule). Unexposed dimensions are zero in PCA coordinates, i.e. the
training mean, on decode.
"""
from __future__ import annotations

from typing import Dict

import numpy as np
import torch
from neurorave.common.errors import UserError


def latent_means(encoder: torch.nn.Module, audio: np.ndarray, hop: int,
                 max_items: int = 256, batch: int = 8) -> np.ndarray:
    """Latent means [frames, latent] of up to `max_items` evenly spaced rows of `audio`."""
    n = len(audio)
    if n == 0:
        raise UserError("the training split is empty: nothing to fit the latent PCA on")
    usable = (audio.shape[1] // hop) * hop
    if usable == 0:
        raise UserError(f"dataset chunks ({audio.shape[1]} samples) are shorter than one "
                        f"latent frame ({hop} samples)")
    rows = np.unique(np.linspace(0, n - 1, min(n, max_items)).round().astype(int))
    frames = []
    with torch.no_grad():
        for start in range(0, len(rows), batch):
            chunk = np.asarray(audio[rows[start:start + batch], :usable], dtype=np.float32)
            mean, _ = encoder(torch.from_numpy(chunk))
            frames.append(mean.permute(0, 2, 1).reshape(-1, mean.shape[1]).double().numpy())
    return np.concatenate(frames)


def fit_pca(latents: np.ndarray) -> Dict[str, np.ndarray]:
    """mean [L], components [L, L] (rows, orthonormal, by falling variance), explained ratio,
    and each coordinate's standard deviation (the scale the device explores the space by)."""
    mean = latents.mean(axis=0)
    centred = latents - mean
    cov = centred.T @ centred / max(1, len(latents) - 1)
    variances, vectors = np.linalg.eigh(cov)
    order = np.argsort(variances)[::-1]
    variances = np.clip(variances[order], 0.0, None)
    components = vectors[:, order].T
    # A deterministic sign: each component's largest entry is positive.
    signs = np.sign(components[np.arange(len(components)),
                               np.abs(components).argmax(axis=1)])
    components = components * np.where(signs == 0, 1.0, signs)[:, None]
    total = variances.sum()
    ratio = variances / total if total > 0 else np.full(len(variances), 1.0 / len(variances))
    return {"mean": mean, "components": components, "explained_variance_ratio": ratio,
            "std": np.sqrt(variances)}


def identity_pca(latent_size: int) -> Dict[str, np.ndarray]:
    """No PCA (the reference decoder): mean zero, components the identity."""
    return {"mean": np.zeros(latent_size), "components": np.eye(latent_size),
            "explained_variance_ratio": np.full(latent_size, 1.0 / latent_size),
            "std": np.ones(latent_size)}


def exposed_dims(explained_ratio: np.ndarray, fidelity: float) -> int:
    """The fewest leading dimensions whose cumulative explained variance reaches `fidelity`."""
    if not 0.0 < fidelity <= 1.0:
        raise UserError(f"--fidelity must be in (0, 1], got {fidelity}")
    cumulative = np.cumsum(explained_ratio)
    return int(min(len(explained_ratio), np.searchsorted(cumulative, fidelity - 1e-9) + 1))
