"""How much of each attribute z still carries: a freshly trained probe.

A small classifier (a 5-frame causal-free conv over z, then two 1x1 layers, one head per
attribute) learns to predict each frame's attribute quantile bin (16 bins whose edges
are the training frames' quantiles, so chance is 1/16) from the latent means of training
items, and is scored on the evaluated test items. F-RAVE's fader training pushes this
toward chance; C-RAVE's z keeps the attributes, so its accuracy stays well above.
"""
from __future__ import annotations

from typing import Any, Dict, Sequence

import numpy as np
import torch
from torch import nn

BINS = 16


def quantile_edges(curves: np.ndarray, bins: int = BINS) -> np.ndarray:
    """curves [N, A, F] -> inner edges [A, bins - 1]."""
    flat = curves.transpose(1, 0, 2).reshape(curves.shape[1], -1)
    return np.quantile(flat, np.linspace(0, 1, bins + 1)[1:-1], axis=1).T


def to_bins(curves: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """[N, A, F] -> bin index [N, A, F] in 0..bins-1."""
    return (curves[..., None] > edges[None, :, None, :]).sum(-1)


class Probe(nn.Module):
    def __init__(self, latent: int, n_attr: int, hidden: int = 64, bins: int = BINS):
        super().__init__()
        self.n_attr, self.bins = n_attr, bins
        self.net = nn.Sequential(nn.Conv1d(latent, hidden, 5, padding=2), nn.ReLU(),
                                 nn.Conv1d(hidden, hidden, 1), nn.ReLU(),
                                 nn.Conv1d(hidden, n_attr * bins, 1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.net(z)
        return out.reshape(z.shape[0], self.n_attr, self.bins, z.shape[-1]).transpose(1, 2)


def probe_accuracy(z_train: np.ndarray, curves_train: np.ndarray, z_test: np.ndarray,
                   curves_test: np.ndarray, names: Sequence[str], steps: int = 300,
                   seed: int = 0) -> Dict[str, Any]:
    """Train the probe on (z_train, curves_train), score on the test set; per attribute."""
    edges = quantile_edges(curves_train)
    y_train = torch.from_numpy(to_bins(curves_train, edges)).long()
    y_test = to_bins(curves_test, edges)
    mu = z_train.mean(axis=(0, 2), keepdims=True)
    sd = z_train.std(axis=(0, 2), keepdims=True) + 1e-6
    x_train = torch.from_numpy(((z_train - mu) / sd).astype(np.float32))
    x_test = torch.from_numpy(((z_test - mu) / sd).astype(np.float32))
    torch.manual_seed(seed)
    probe = Probe(z_train.shape[1], len(names))
    opt = torch.optim.Adam(probe.parameters(), 3e-3)
    batch = 32
    gen = np.random.default_rng(seed)
    with torch.enable_grad():
        for _ in range(steps):
            rows = gen.integers(0, len(x_train), size=min(batch, len(x_train)))
            loss = nn.functional.cross_entropy(probe(x_train[rows]), y_train[rows])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        pred = probe(x_test).argmax(1).numpy()
        train_acc = (probe(x_train).argmax(1) == y_train).float().mean(dim=(0, 2)).numpy()
    per_attr: Dict[str, Any] = {}
    for a, name in enumerate(names):
        counts = np.bincount(y_train[:, a].reshape(-1).numpy(), minlength=BINS)
        majority = int(counts.argmax())
        per_attr[name] = {"accuracy": float((pred[:, a] == y_test[:, a]).mean()),
                          "train_accuracy": float(train_acc[a]),
                          "majority_baseline": float((y_test[:, a] == majority).mean())}
    accuracy = float(np.mean([v["accuracy"] for v in per_attr.values()]))
    return {"chance": 1.0 / BINS, "bins": BINS, "accuracy": accuracy,
            "accuracy_over_chance": accuracy * BINS, "attributes": per_attr,
            "train_items": int(len(z_train)), "test_items": int(len(z_test)),
            "steps": steps}
