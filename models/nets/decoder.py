"""Causal decoder conditioned on attribute curves (the C-RAVE / F-RAVE scheme).

z [B, latent, F] and the normalised attribute curves [B, A, F] are concatenated as
channels at the latent rate, then upsampled by causal sub-pixel convolutions with
residual stacks to the PQMF band rate. Three heads per band: a waveform (tanh), an
amplitude (sigmoid) multiplying it, and a filtered-noise branch; the PQMF synthesis
merges the bands. Output frame t depends on z and attributes up to frame t only:
zero look-ahead, streams one latent frame per call.

The noise is an explicit input (white noise at the band rate, [B, bands, F * hop / bands]):
training draws it, an exported graph can take it from the device's own generator.
"""
from typing import Optional, Sequence

import numpy as np
import torch
from neurorave.models.nets.causal import CausalConv1d, CausalUpsample, ResidualStack
from neurorave.models.nets.pqmf import PQMFSynthesis
from neurorave.models.nets.streaming import CausalPad
from torch import nn


class FilteredNoise(nn.Module):
    """Per-band noise shaped by a time-varying FIR whose magnitude response the net predicts.

    Every `block` band-rate samples the net gives `noise_bins` magnitudes per band; a
    fixed cosine matrix turns them into a linear-phase, Hann-windowed impulse response
    of `2 * (noise_bins - 1)` taps, applied causally to the white noise (ONNX opset 13:
    only MatMul, Mul, Slice and Add, no FFT).
    """

    def __init__(self, in_channels: int, bands: int, noise_bins: int, block: int):
        super().__init__()
        self.bands = bands
        self.bins = noise_bins
        self.block = block
        self.taps = 2 * (noise_bins - 1)
        self.magnitudes = CausalConv1d(in_channels, bands * noise_bins, 2 * block, stride=block)
        n = np.arange(self.taps) - (self.taps - 1) / 2
        k = np.arange(noise_bins)
        weights = np.where((k == 0) | (k == noise_bins - 1), 1.0, 2.0) / self.taps
        basis = weights[:, None] * np.cos(2 * np.pi * k[:, None] * n[None, :] / self.taps)
        basis = basis * np.hanning(self.taps + 2)[1:-1][None, :]
        self.register_buffer("basis", torch.from_numpy(basis.astype(np.float32)), persistent=False)
        self.noise_pad = CausalPad(bands, self.taps - 1)

    def forward(self, hidden: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        b, _, t = hidden.shape
        mags = torch.sigmoid(self.magnitudes(hidden) - 5.0)  # start quiet
        mags = mags.reshape(b, self.bands, self.bins, t // self.block).transpose(2, 3)
        ir = torch.matmul(mags, self.basis)  # [B, bands, blocks, taps]
        ir = ir.repeat_interleave(self.block, dim=2)  # one response per sample
        padded = self.noise_pad(noise)  # [B, bands, taps - 1 + t]
        out = torch.zeros_like(noise)
        for j in range(self.taps):  # y[n] = sum_j ir_n[j] noise[n - j]
            start = self.taps - 1 - j
            out = out + ir[..., j] * padded[..., start:start + t]
        return out


class Decoder(nn.Module):
    def __init__(self, bands: int, ratios: Sequence[int], capacity: int, latent_size: int,
                 n_attributes: int, noise_bins: int = 5, noise_block: int = 4,
                 pqmf_taps_per_band: int = 8, dilations: Sequence[int] = (1, 3, 9)):
        super().__init__()
        self.bands = bands
        self.ratios = list(ratios)
        self.hop = bands * int(np.prod(ratios))
        self.latent_size = latent_size
        self.n_attributes = n_attributes
        if (self.hop // bands) % noise_block:
            raise ValueError("noise_block must divide the band-rate samples per latent frame")
        channels = capacity * 2 ** len(ratios)
        layers = [CausalConv1d(latent_size + n_attributes, channels, 3)]
        for ratio in ratios:
            out = max(channels // 2, 1)
            layers += [nn.LeakyReLU(0.2), CausalUpsample(channels, out, ratio),
                       ResidualStack(out, dilations)]
            channels = out
        layers.append(nn.LeakyReLU(0.2))
        self.trunk = nn.Sequential(*layers)
        self.waveform = CausalConv1d(channels, bands, 7)
        self.amplitude = CausalConv1d(channels, bands, 3)
        self.noise = FilteredNoise(channels, bands, noise_bins, noise_block)
        self.pqmf = PQMFSynthesis(bands, pqmf_taps_per_band)

    def noise_shape(self, batch: int, frames: int):
        return (batch, self.bands, frames * self.hop // self.bands)

    def forward(self, z: torch.Tensor, attributes: torch.Tensor,
                noise: Optional[torch.Tensor] = None) -> torch.Tensor:
        """z [B, latent, F], attributes [B, A, F] in [-1, 1] -> audio [B, 1, F * hop]."""
        hidden = self.trunk(torch.cat([z, attributes], dim=1))
        if noise is None:
            noise = torch.rand(self.noise_shape(z.shape[0], z.shape[-1]),
                               device=z.device, dtype=hidden.dtype) * 2 - 1
        bands = (torch.tanh(self.waveform(hidden)) * torch.sigmoid(self.amplitude(hidden))
                 + self.noise(hidden, noise))
        return self.pqmf(bands)
