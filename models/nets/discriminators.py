"""Audio critics for the adversarial phase (training only, never streamed or exported).

- MultiScaleDiscriminator: conv stacks on the waveform at several resolutions (MelGAN / RAVE v1).
- MultiPeriodDiscriminator: 2-D convs on the waveform folded by a period (HiFi-GAN).
Each sub-discriminator returns its feature maps; the last one is the score map.
"""
from typing import List, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

Features = List[torch.Tensor]


class _ScaleCritic(nn.Module):
    def __init__(self, capacity: int, layers: int):
        super().__init__()
        convs = [weight_norm(nn.Conv1d(1, capacity, 15, padding=7))]
        channels = capacity
        for _ in range(layers):
            out = min(channels * 4, capacity * 64)
            groups = max(channels // 4, 1)
            convs.append(weight_norm(nn.Conv1d(channels, out, 41, stride=4, padding=20,
                                               groups=groups)))
            channels = out
        convs.append(weight_norm(nn.Conv1d(channels, channels, 5, padding=2)))
        self.convs = nn.ModuleList(convs)
        self.score = weight_norm(nn.Conv1d(channels, 1, 3, padding=1))

    def forward(self, x: torch.Tensor) -> Features:
        feats = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.2)
            feats.append(x)
        feats.append(self.score(x))
        return feats


class MultiScaleDiscriminator(nn.Module):
    def __init__(self, scales: int = 3, capacity: int = 16, layers: int = 4):
        super().__init__()
        self.critics = nn.ModuleList([_ScaleCritic(capacity, layers) for _ in range(scales)])

    def forward(self, x: torch.Tensor) -> List[Features]:
        out = []
        for i, critic in enumerate(self.critics):
            if i:
                x = F.avg_pool1d(x, 4, 2, padding=1)
            out.append(critic(x))
        return out


class _PeriodCritic(nn.Module):
    def __init__(self, period: int, capacity: int, layers: int):
        super().__init__()
        self.period = period
        convs = []
        channels = 1
        for i in range(layers):
            out = capacity * 2 ** min(i, 4)
            convs.append(weight_norm(nn.Conv2d(channels, out, (5, 1), stride=(3, 1),
                                               padding=(2, 0))))
            channels = out
        convs.append(weight_norm(nn.Conv2d(channels, channels, (5, 1), padding=(2, 0))))
        self.convs = nn.ModuleList(convs)
        self.score = weight_norm(nn.Conv2d(channels, 1, (3, 1), padding=(1, 0)))

    def forward(self, x: torch.Tensor) -> Features:
        b, c, t = x.shape
        if t % self.period:
            x = F.pad(x, (0, self.period - t % self.period), mode="reflect")
        x = x.reshape(b, c, -1, self.period)
        feats = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.2)
            feats.append(x)
        feats.append(self.score(x))
        return feats


class MultiPeriodDiscriminator(nn.Module):
    def __init__(self, periods: Sequence[int] = (2, 3, 5, 7, 11), capacity: int = 16,
                 layers: int = 4):
        super().__init__()
        self.critics = nn.ModuleList([_PeriodCritic(p, capacity, layers) for p in periods])

    def forward(self, x: torch.Tensor) -> List[Features]:
        return [critic(x) for critic in self.critics]


class CombinedDiscriminator(nn.Module):
    """All critics at once: a flat list of feature lists, one per sub-discriminator."""

    def __init__(self, scales: int, periods: Sequence[int], capacity: int, layers: int):
        super().__init__()
        self.parts = nn.ModuleList()
        if scales:
            self.parts.append(MultiScaleDiscriminator(scales, capacity, layers))
        if periods:
            self.parts.append(MultiPeriodDiscriminator(periods, capacity, layers))

    def forward(self, x: torch.Tensor) -> List[Features]:
        if x.dim() == 2:
            x = x.unsqueeze(1)
        return [feats for part in self.parts for feats in part(x)]
