"""The prior network: a GRU over frames, a mixture of diagonal Gaussians per frame.

Each frame x_t joins the latent PCA coordinates and the attribute values (standardised
per dimension). The network reads the previous frame, the values the player pins in
this frame (CV1 on latent 0, the attributes on CVs) and the pin mask, and predicts the
whole frame; pinned dimensions are then taken as given. Trained with random pin masks,
it learns p(free dims of x_t | the past, the pinned dims of x_t): sampling the rest
consistently with what the controls hold.

Sampling is written with explicit uniform noise (mixture choice and Box-Muller for the
Gaussians) so that the exported graph is deterministic given its inputs: the device
draws the noise, seeded, as it does for the decoder.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
from torch import nn

LOG_SIGMA_MIN, LOG_SIGMA_MAX = -7.0, 2.0


class PriorNet(nn.Module):
    def __init__(self, dims: int, hidden: int = 128, layers: int = 2, mixtures: int = 4):
        super().__init__()
        self.dims, self.hidden, self.layers, self.mixtures = dims, hidden, layers, mixtures
        self.embed = nn.Linear(3 * dims, hidden)
        self.gru = nn.GRU(hidden, hidden, layers, batch_first=True)
        self.head = nn.Linear(hidden, mixtures * (1 + 2 * dims))

    def forward(self, prev: torch.Tensor, pinned: torch.Tensor, mask: torch.Tensor,
                state: Optional[torch.Tensor] = None
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """[B, T, D] each (standardised) -> logits [B,T,K], mu and log_sigma [B,T,K,D],
        and the GRU state [layers, B, H]."""
        e = torch.tanh(self.embed(torch.cat([prev, pinned * mask, mask], -1)))
        y, state = self.gru(e, state)
        out = self.head(y)
        b, t = out.shape[:2]
        k, d = self.mixtures, self.dims
        logits = out[..., :k]
        mu = out[..., k:k + k * d].reshape(b, t, k, d)
        log_sigma = out[..., k + k * d:].reshape(b, t, k, d).clamp(LOG_SIGMA_MIN, LOG_SIGMA_MAX)
        return logits, mu, log_sigma, state


def mixture_nll(logits: torch.Tensor, mu: torch.Tensor, log_sigma: torch.Tensor,
                x: torch.Tensor, free: torch.Tensor) -> torch.Tensor:
    """-log p(free dims of x) per frame [B, T]; `free` is 1 where a dim is not pinned."""
    z = (x[..., None, :] - mu) / log_sigma.exp()
    per_dim = -0.5 * z * z - log_sigma - 0.5 * math.log(2 * math.pi)
    per_component = (per_dim * free[..., None, :]).sum(-1)
    return -torch.logsumexp(torch.log_softmax(logits, -1) + per_component, -1)


def sample_from(logits: torch.Tensor, mu: torch.Tensor, log_sigma: torch.Tensor,
                temperature: torch.Tensor, u_mix: torch.Tensor, u1: torch.Tensor,
                u2: torch.Tensor) -> torch.Tensor:
    """One sample per frame from uniform noise: u_mix [..., 1], u1/u2 [..., D] in [0, 1).

    Temperature sharpens the mixture weights and scales the spread; 0 gives the most
    likely component's mean.
    """
    t = temperature.clamp_min(1e-3)
    probs = torch.softmax(logits / t, -1)
    cum = torch.cumsum(probs, -1)
    above = (cum > u_mix).float()
    # The last component closes the range even if rounding leaves cum[-1] just under 1.
    above = torch.cat([above[..., :-1], torch.ones_like(above[..., -1:])], -1)
    onehot = above - torch.cat([torch.zeros_like(above[..., :1]), above[..., :-1]], -1)
    eps = torch.sqrt(-2.0 * torch.log(u1.clamp(1e-7, 1.0))) * torch.cos(2 * math.pi * u2)
    chosen_mu = (onehot[..., None] * mu).sum(-2)
    chosen_sigma = (onehot[..., None] * log_sigma.exp()).sum(-2)
    return chosen_mu + temperature * chosen_sigma * eps
