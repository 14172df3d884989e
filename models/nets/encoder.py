"""Causal variational encoder: audio -> PQMF bands -> strided causal convs -> latent mean, scale.

One latent frame per `hop` = bands x prod(ratios) samples; frame t sees audio up to the
end of its own hop and nothing later, so the encoder streams hop by hop.
"""
from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from neurorave.models.nets.causal import CausalConv1d, ResidualStack
from neurorave.models.nets.pqmf import PQMFAnalysis
from torch import nn


class Encoder(nn.Module):
    def __init__(self, bands: int, ratios: Sequence[int], capacity: int, latent_size: int,
                 pqmf_taps_per_band: int = 8, residual: bool = False):
        super().__init__()
        self.bands = bands
        self.hop = bands * int(torch.tensor(list(ratios)).prod())
        self.latent_size = latent_size
        self.pqmf = PQMFAnalysis(bands, pqmf_taps_per_band)
        layers = [CausalConv1d(bands, capacity, 7)]
        channels = capacity
        for ratio in ratios:
            out = min(channels * 2, capacity * 16)
            if residual:
                layers.append(ResidualStack(channels, dilations=(1, 3)))
            layers += [nn.LeakyReLU(0.2), CausalConv1d(channels, out, 2 * ratio, stride=ratio)]
            channels = out
        layers += [nn.LeakyReLU(0.2), CausalConv1d(channels, 2 * latent_size, 3)]
        self.net = nn.Sequential(*layers)
        for module in self.net.modules():  # keep the signal's scale through the stack
            if isinstance(module, nn.Conv1d):
                nn.init.kaiming_normal_(module.weight, a=0.2, nonlinearity="leaky_relu")
                nn.init.zeros_(module.bias)

    def forward(self, audio: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """[B, T] or [B, 1, T] audio (T a multiple of hop) -> mean, scale [B, latent, T // hop]."""
        if audio.dim() == 2:
            audio = audio.unsqueeze(1)
        out = self.net(self.pqmf(audio))
        mean, raw_scale = out.chunk(2, dim=1)
        return mean, F.softplus(raw_scale) + 1e-4


def reparametrize(mean: torch.Tensor, scale: torch.Tensor,
                  generator: "torch.Generator | None" = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Sample z; KL divergence to N(0, 1), summed over latent dims, mean over frames."""
    eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    z = mean + scale * eps
    var = scale * scale
    kl = (mean * mean + var - torch.log(var) - 1).sum(1).mean()
    return z, kl
