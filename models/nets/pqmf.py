"""Pseudo-QMF filter bank (cosine-modulated, near perfect reconstruction), causal polyphase form.

Analysis splits audio into `bands` critically sampled sub-bands; synthesis merges them
back. Both are written as a causal convolution over blocks of `bands` samples, so they
stream with an explicit cache like every other layer. Analysis followed by synthesis
returns the input delayed by `delay` samples (taps - bands).

The prototype low-pass is a Kaiser-windowed FIR whose cutoff is tuned so that
|H(w)|^2 + |H(pi/M - w)|^2 stays close to 1 across the first band (the PQMF design rule).
"""
from functools import lru_cache

import numpy as np
import torch
from neurorave.models.nets.causal import CausalConv1d
from scipy.optimize import minimize_scalar
from scipy.signal import firwin, freqz
from torch import nn


@lru_cache(maxsize=16)
def prototype_filter(bands: int, taps: int, beta: float = 9.0) -> np.ndarray:
    """Kaiser low-pass prototype of `taps` taps for a `bands`-band PQMF."""

    def flatness_error(cutoff: float) -> float:
        h = firwin(taps, cutoff, window=("kaiser", beta), fs=2.0)  # cutoff in [0, 1]
        w, resp = freqz(h, worN=1024)
        mirrored = freqz(h, worN=np.pi / bands - w)[1]
        error = np.abs(resp) ** 2 + np.abs(mirrored) ** 2 - 1.0
        return float(np.sum(error[w < np.pi / bands] ** 2))

    best = minimize_scalar(flatness_error, bounds=(0.2 / bands, 1.8 / bands), method="bounded")
    return firwin(taps, best.x, window=("kaiser", beta), fs=2.0)


def _modulated(bands: int, taps: int, sign: float) -> np.ndarray:
    """[bands, taps] cosine-modulated filters (sign +1: analysis, -1: synthesis)."""
    h = prototype_filter(bands, taps)
    n = np.arange(taps) - (taps - 1) / 2
    k = np.arange(bands)[:, None]
    phase = sign * (-1.0) ** k * np.pi / 4
    return 2 * h[None, :] * np.cos((2 * k + 1) * np.pi / (2 * bands) * n[None, :] + phase)


class _PolyphaseBase(nn.Module):
    def __init__(self, bands: int, taps_per_band: int):
        super().__init__()
        self.bands = bands
        self.taps = bands * taps_per_band
        self.span = taps_per_band  # kernel length in blocks
        self.delay = self.taps - bands if bands > 1 else 0


class PQMFAnalysis(_PolyphaseBase):
    """[B, 1, T] audio -> [B, bands, T // bands] sub-bands. T must be a multiple of bands."""

    def __init__(self, bands: int, taps_per_band: int = 8):
        super().__init__(bands, taps_per_band)
        if bands > 1:
            filters = _modulated(bands, self.taps, +1.0)  # h_k[j]
            p, r = np.meshgrid(np.arange(self.span), np.arange(bands), indexing="ij")
            # out_k[q] = sum_{p,r} h_k[pM + M-1-r] x[(q-p)M + r]
            weight = np.zeros((bands, bands, self.span), dtype=np.float32)
            for k in range(bands):
                weight[k, r, self.span - 1 - p] = filters[k, p * bands + bands - 1 - r]
            self.conv = CausalConv1d(bands, bands, self.span, bias=False)
            self.conv.conv.weight.data.copy_(torch.from_numpy(weight))
            self.conv.conv.weight.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bands == 1:
            return x
        b, _, t = x.shape
        blocks = x.reshape(b, t // self.bands, self.bands).transpose(1, 2)  # [B, M, T/M]
        return self.conv(blocks)


class PQMFSynthesis(_PolyphaseBase):
    """[B, bands, N] sub-bands -> [B, 1, N * bands] audio."""

    def __init__(self, bands: int, taps_per_band: int = 8):
        super().__init__(bands, taps_per_band)
        if bands > 1:
            filters = _modulated(bands, self.taps, -1.0)  # g_k[j]
            # y[qM + r] = M sum_{k,p} g_k[pM + r] u_k[q-p]
            weight = np.zeros((bands, bands, self.span), dtype=np.float32)
            for p in range(self.span):
                weight[:, :, self.span - 1 - p] = bands * filters[:, p * bands:(p + 1) * bands].T
            self.conv = CausalConv1d(bands, bands, self.span, bias=False)
            self.conv.conv.weight.data.copy_(torch.from_numpy(weight))
            self.conv.conv.weight.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bands == 1:
            return x
        phases = self.conv(x)  # [B, M, N]: phase r of block q
        b, m, n = phases.shape
        return phases.transpose(1, 2).reshape(b, 1, n * m)
