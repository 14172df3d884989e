"""The F-RAVE fader critic: from z alone, guess each attribute's quantile bin per frame.

A small conv trunk over the latent frames, then one 1x1 head per attribute giving
`n_bins` logits. Non-causal (it never runs on the module). Trained to minimise the
cross-entropy; the encoder is pushed the other way (-lambda * CE), so the attributes
leave z and the decoder must take them from the control inputs.
"""
import torch
from torch import nn


class LatentDiscriminator(nn.Module):
    def __init__(self, latent_size: int, n_attributes: int, hidden: int = 128,
                 n_bins: int = 16, layers: int = 3):
        super().__init__()
        trunk = []
        channels = latent_size
        for _ in range(layers):
            trunk += [nn.Conv1d(channels, hidden, 3, padding=1), nn.LeakyReLU(0.2)]
            channels = hidden
        self.trunk = nn.Sequential(*trunk)
        self.heads = nn.Conv1d(hidden, n_attributes * n_bins, 1)
        self.n_attributes = n_attributes
        self.n_bins = n_bins

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z [B, latent, F] -> logits [B, n_bins, A, F] (class axis second, for cross_entropy)."""
        b, _, f = z.shape
        logits = self.heads(self.trunk(z)).reshape(b, self.n_attributes, self.n_bins, f)
        return logits.transpose(1, 2)
