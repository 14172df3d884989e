"""Causal convolution blocks: output sample t never depends on input after t.

Each layer takes its left context from a `CausalPad`, so it streams with an explicit
cache (see `streaming.py`). Upsampling has no state of its own and no overlap-add tail:
"subpixel" (the 16 kHz bundles') has a causal conv make `factor` phases per input step,
interleaved; "repeat" holds each input step `factor` times, then a causal conv runs at
the new rate. A sub-pixel layer gives each phase its own filter, so a held input comes
out as a pattern repeating every input step: stacked up to the latent rate, a buzz at
the frame rate and its multiples (gm-drums-48k: a comb every 187.5 Hz). A held input
repeated stays held, whatever the conv learns.
"""
import torch
from neurorave.models.config import UPSAMPLERS
from neurorave.models.nets.streaming import CausalPad
from torch import nn


class CausalConv1d(nn.Module):
    """Conv1d with left-only padding. With stride s, feed chunks whose length is a multiple of s.

    Output position q sees inputs up to q*s + s - 1 (the end of its own block), never later.
    The cache holds the last (kernel-1)*dilation + 1 - stride input samples.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 stride: int = 1, dilation: int = 1, groups: int = 1, bias: bool = True):
        super().__init__()
        context = (kernel_size - 1) * dilation + 1 - stride
        if context < 0:
            raise ValueError("kernel too short for its stride: it would skip samples")
        self.stride = stride
        self.pad = CausalPad(in_channels, context)
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride,
                              dilation=dilation, groups=groups, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.pad(x))


class CausalUpsample(nn.Module):
    """Upsample by `factor`, "subpixel" or "repeat" (see above). Both cost the same
    multiply-adds per output sample with the same kernel size; repeat has 1/factor the
    weights."""

    def __init__(self, in_channels: int, out_channels: int, factor: int, kernel_size: int = 3,
                 mode: str = "subpixel"):
        super().__init__()
        if mode not in UPSAMPLERS:
            raise ValueError(f"upsampler {mode!r}: one of {', '.join(UPSAMPLERS)}")
        self.factor = factor
        self.out_channels = out_channels
        self.mode = mode
        phases = factor if mode == "subpixel" else 1
        self.conv = CausalConv1d(in_channels, out_channels * phases, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "repeat":
            b, c, t = x.shape  # expand + reshape: traces to plain ONNX ops, no Resize
            held = x[..., None].expand(b, c, t, self.factor).reshape(b, c, t * self.factor)
            return self.conv(held)
        y = self.conv(x)  # [B, C*f, T]
        b, _, t = y.shape
        y = y.reshape(b, self.out_channels, self.factor, t)
        return y.permute(0, 1, 3, 2).reshape(b, self.out_channels, t * self.factor)


class ResidualUnit(nn.Module):
    """LeakyReLU -> dilated causal conv -> LeakyReLU -> 1x1 conv, added to the input."""

    def __init__(self, channels: int, dilation: int, kernel_size: int = 3):
        super().__init__()
        self.net = nn.Sequential(
            nn.LeakyReLU(0.2),
            CausalConv1d(channels, channels, kernel_size, dilation=dilation),
            nn.LeakyReLU(0.2),
            nn.Conv1d(channels, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class ResidualStack(nn.Sequential):
    """Residual units with growing dilation (1, 3, 9 by default)."""

    def __init__(self, channels: int, dilations=(1, 3, 9), kernel_size: int = 3):
        super().__init__(*[ResidualUnit(channels, d, kernel_size) for d in dilations])
