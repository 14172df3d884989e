"""Causal decoder conditioned on attribute curves (the C-RAVE / F-RAVE scheme).

z [B, latent, F] and the normalised attribute curves [B, A, F] are concatenated as
channels at the latent rate, then upsampled (sub-pixel, or repeat-then-convolve: see
causal.py) with residual stacks to the PQMF band rate. Three heads per band: a waveform (tanh), an
amplitude (sigmoid) multiplying it, and a filtered-noise branch; the PQMF synthesis
merges the bands. With `harmonics` > 0 (and f0 among the attributes), a fourth head
adds sines at f0 and its multiples at the audio rate (DDSP's harmonic oscillator).
With a level stage (rms among the attributes), each frame's energy is then set to the
rms asked for: the rms input works as a VCA.
Output frame t depends on z and attributes up to frame t only: zero look-ahead,
streams one latent frame per call.

The noise is an explicit input (white noise at the band rate, [B, bands, F * hop / bands]):
training draws it, an exported graph can take it from the device's own generator.
"""
from typing import Optional, Sequence

import numpy as np
import torch
from neurorave.models.nets.causal import CausalConv1d, CausalUpsample, ResidualStack
from neurorave.models.nets.pqmf import PQMFSynthesis
from neurorave.models.nets.streaming import CausalPad, StateCell
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


class HarmonicSource(nn.Module):
    """Sines at f0 and its first `harmonics` multiples, each with an amplitude the net
    predicts at the band rate: pitch by construction, so 1 V/oct plays in tune long
    before a waveform head alone would learn to follow f0.

    f0 [B, F] in Hz holds for its latent frame. The phase runs on from call to call in
    a `StateCell` (in cycles, kept in [0, 1)), so streaming equals the offline run.
    Harmonics at or above Nyquist are muted.
    """

    def __init__(self, in_channels: int, harmonics: int, sample_rate: int, hop: int,
                 bands: int):
        super().__init__()
        self.sample_rate = sample_rate
        self.hop = hop
        self.bands = bands
        self.amplitudes = CausalConv1d(in_channels, harmonics, 3)
        self.register_buffer("multiples", torch.arange(1, harmonics + 1,
                                                       dtype=torch.float32)[None, :, None],
                             persistent=False)
        self.phase = StateCell(1)

    def forward(self, hidden: torch.Tensor, f0_hz: torch.Tensor) -> torch.Tensor:
        b, frames = f0_hz.shape
        amps = torch.sigmoid(self.amplitudes(hidden) - 5.0)  # start quiet
        # Phases in cycles, wrapped per frame so float32 stays exact over long signals:
        # each frame starts where the last ended, and f0 holds within a frame.
        step = f0_hz / self.sample_rate  # cycles per sample [B, F]
        advance = self.hop * step
        advance = advance - torch.floor(advance)
        prev = self.phase.read(hidden)[:, 0, :]  # [B, 1]
        ends = prev + torch.cumsum(advance, dim=1)
        starts = ends - advance
        last = ends[:, -1:]
        self.phase.write((last - torch.floor(last))[:, None, :])
        k = self.multiples  # [1, H, 1]
        start = k * starts[:, None, :]  # [B, H, F]
        start = 2 * torch.pi * (start - torch.floor(start))
        rate = 2 * torch.pi * k * step[:, None, :]  # radians per sample [B, H, F]
        # Sample i = m * bands + j of a frame (m: its band sample, where the amplitude
        # changes) has the phase coarse[m] + fine[j] (coarse = start + rate * m * bands,
        # fine = rate * (j + 1)), so sin(coarse + fine) = sin(coarse) cos(fine) +
        # cos(coarse) sin(fine), and the sum over harmonics of amplitude x sine is one
        # small matrix product per frame. No [B, H, samples] tensor is ever made: the
        # sines at the audio rate were half of a 48 kHz training step.
        per = self.hop // self.bands  # band samples per frame
        m = torch.arange(per, dtype=hidden.dtype, device=hidden.device) * self.bands
        j = torch.arange(1, self.bands + 1, dtype=hidden.dtype, device=hidden.device)
        start, rate = start.transpose(1, 2)[..., None], rate.transpose(1, 2)[..., None]
        coarse = start + rate * m   # [B, F, H, per]
        fine = rate * j             # [B, F, H, bands]
        audible = (k * f0_hz[:, None, :] < self.sample_rate / 2).to(amps.dtype)  # [B, H, F]
        weights = amps.reshape(b, k.shape[1], frames, per) * audible[..., None]
        weights = weights.transpose(1, 2)  # [B, F, H, per]
        left = torch.cat([weights * torch.sin(coarse), weights * torch.cos(coarse)], dim=2)
        right = torch.cat([torch.cos(fine), torch.sin(fine)], dim=2)  # [B, F, 2H, bands]
        out = torch.matmul(left.transpose(2, 3), right)  # [B, F, per, bands]
        return out.reshape(b, 1, frames * self.hop)


class BandDCBlock(nn.Module):
    """A one-pole high-pass (a DC blocker) on every band signal before the PQMF merges
    them. A steady offset in a band signal comes out of the PQMF as a pure tone at a
    band edge (k x sample rate / bands: 2, 4 and 6 kHz at 16 kHz with 8 bands), which the
    decoders learned to emit (benchmarks/band_edge_tones.py); no loss forbids it.

    y[n] = g (x[n] - x[n-1]) + r y[n-1], g = (1 + r) / 2 for unity gain at high
    frequencies, solved in closed form over blocks of `block`
    samples (a constant lower-triangular matrix of powers of r), so that it traces to
    ONNX without a loop; the last x and y of each band run on from call to call in
    `StateCell`s. No weights: a checkpoint trained without it loads as it is.
    """

    def __init__(self, bands: int, band_rate: float, cutoff_hz: float, block: int = 128):
        super().__init__()
        self.r = float(np.exp(-2 * np.pi * cutoff_hz / band_rate))
        self.gain = (1.0 + self.r) / 2
        self.block = block
        self.last_x = StateCell(bands)
        self.last_y = StateCell(bands)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[-1]
        block = min(self.block, t)  # a shorter last block uses the matrix's top-left corner
        n = torch.arange(block, dtype=x.dtype, device=x.device)
        lag = n[:, None] - n[None, :]
        powers = torch.where(lag >= 0, torch.pow(self.r, lag.clamp(min=0)),
                             torch.zeros_like(lag))  # [block, block]
        decay = torch.pow(self.r, n + 1)             # what y[-1] still weighs at n
        prev_x, prev_y = self.last_x.read(x), self.last_y.read(x)
        out = []
        for start in range(0, t, block):
            chunk = x[..., start:start + block]
            size = chunk.shape[-1]
            step = self.gain * (chunk - torch.cat([prev_x, chunk[..., :-1]], dim=-1))
            y = torch.matmul(step, powers[:size, :size].T) + prev_y * decay[:size]
            out.append(y)
            prev_x, prev_y = chunk[..., -1:], y[..., -1:]
        self.last_x.write(prev_x)
        self.last_y.write(prev_y)
        return torch.cat(out, dim=-1)


class LevelStage(nn.Module):
    """Sets each latent frame's RMS to the rms attribute: the decoder shapes the sound,
    this stage gives it the level asked for, so the rms control (and a prior's rms)
    is heard at its value. Without it the multi-scale STFT loss, mostly a log-magnitude
    distance, left the output about 9 dB below its input, and z, not the rms input,
    decided how loud a note was.

    The gain (asked / measured, at most MAX_GAIN) rises linearly from the previous
    frame's over each frame, so a swell is a ramp, not a step, and falls at once (else an
    onset after a quiet frame would get the quiet frame's gain and overshoot); the
    previous gain is a `StateCell` (zero after a reset: a stream fades in).
    """

    # A frame the decoder left near-silent still reaches a quiet level asked of it (at
    # 100 and -80 dBFS, phrases a prior asked to play at -55 dBFS came out silent), but
    # rounding noise is not blown up to full scale.
    MAX_GAIN = 1000.0  # +60 dB
    FLOOR = 1e-6       # RMS under -120 dBFS counts as -120 dBFS

    def __init__(self, hop: int):
        super().__init__()
        self.hop = hop
        self.gain = StateCell(1)
        self.register_buffer("ramp", torch.arange(1, hop + 1, dtype=torch.float32) / hop,
                             persistent=False)

    def forward(self, audio: torch.Tensor, rms: torch.Tensor) -> torch.Tensor:
        """audio [B, 1, F * hop], rms [B, F] (linear) -> audio at that level."""
        b, frames = rms.shape
        x = audio.reshape(b, frames, self.hop)
        measured = torch.sqrt(x.pow(2).mean(-1) + self.FLOOR ** 2)
        gain = torch.clamp(rms.clamp_min(0.0) / measured, max=self.MAX_GAIN)
        prev = self.gain.read(audio)[:, 0, :]  # [B, 1]
        before = torch.cat([prev, gain[:, :-1]], dim=1)
        self.gain.write(gain[:, -1:][:, None, :])
        # A rising gain glides; a falling one applies at once: a frame louder than the
        # last (an onset) must not meet the quiet frame's large gain.
        start = torch.minimum(before, gain)
        glide = start[..., None] + (gain - start)[..., None] * self.ramp
        return (x * glide).reshape(b, 1, frames * self.hop)


class Decoder(nn.Module):
    def __init__(self, bands: int, ratios: Sequence[int], capacity: int, latent_size: int,
                 n_attributes: int, noise_bins: int = 5, noise_block: int = 4,
                 pqmf_taps_per_band: int = 8, dilations: Sequence[int] = (1, 3, 9),
                 harmonics: int = 0, f0_index: Optional[int] = None,
                 sample_rate: int = 16000, rms_index: Optional[int] = None,
                 band_dc_block_hz: float = 0.0, upsample: str = "subpixel"):
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
            layers += [nn.LeakyReLU(0.2), CausalUpsample(channels, out, ratio, mode=upsample),
                       ResidualStack(out, dilations)]
            channels = out
        layers.append(nn.LeakyReLU(0.2))
        self.trunk = nn.Sequential(*layers)
        self.waveform = CausalConv1d(channels, bands, 7)
        self.amplitude = CausalConv1d(channels, bands, 3)
        self.noise = FilteredNoise(channels, bands, noise_bins, noise_block)
        self.pqmf = PQMFSynthesis(bands, pqmf_taps_per_band)
        self.dc_block: Optional[BandDCBlock] = None
        if band_dc_block_hz > 0:
            self.dc_block = BandDCBlock(bands, sample_rate / bands, band_dc_block_hz)
        self.harmonic: Optional[HarmonicSource] = None
        self.f0_index = f0_index
        if harmonics:
            if f0_index is None:
                raise ValueError("a harmonic source needs the f0 attribute")
            self.harmonic = HarmonicSource(channels, harmonics, sample_rate, self.hop, bands)
            # log(Hz) at -1 and +1 of the f0 input: the dataset's range, set by
            # `set_f0_range` and saved with the weights.
            self.register_buffer("f0_log_range", torch.tensor([np.log(50.0), np.log(2000.0)],
                                                              dtype=torch.float32))

        # With `rms_index`, the level stage; the rms input's range (linear units, or log
        # ones where rms conditions in dB) comes from the run's stats (`set_rms_range`),
        # like the f0 range, but is not saved: weights trained without the stage load
        # into a decoder with it.
        self.rms_index = rms_index
        self.level: Optional[LevelStage] = None
        self.rms_log = False
        if rms_index is not None:
            self.level = LevelStage(self.hop)
            self.register_buffer("rms_range", torch.tensor([0.0, 1.0]), persistent=False)

    def set_rms_range(self, lo: float, hi: float, log: bool = False) -> None:
        """The rms input's value at -1 and +1: rms, or log(rms) when `log`."""
        if self.level is not None:
            self.rms_range.copy_(torch.tensor([lo, hi]))
            self.rms_log = log

    def set_f0_range(self, log_lo: float, log_hi: float) -> None:
        if self.harmonic is not None:
            self.f0_log_range.copy_(torch.tensor([log_lo, log_hi]))

    def f0_hz(self, attributes: torch.Tensor) -> torch.Tensor:
        """The f0 input [-1, 1] back to Hz [B, F] (the inverse of the log scaling)."""
        lo, hi = self.f0_log_range[0], self.f0_log_range[1]
        return torch.exp(lo + (attributes[:, self.f0_index] + 1) * 0.5 * (hi - lo))

    def noise_shape(self, batch: int, frames: int):
        return (batch, self.bands, frames * self.hop // self.bands)

    def forward(self, z: torch.Tensor, attributes: torch.Tensor,
                noise: Optional[torch.Tensor] = None, with_heads: bool = False):
        """z [B, latent, F], attributes [B, A, F] in [-1, 1] -> audio [B, 1, F * hop]
        (with `with_heads`, and the waveform heads [B, bands, T], for training)."""
        hidden = self.trunk(torch.cat([z, attributes], dim=1))
        if noise is None:
            noise = torch.rand(self.noise_shape(z.shape[0], z.shape[-1]),
                               device=z.device, dtype=hidden.dtype) * 2 - 1
        heads = torch.tanh(self.waveform(hidden))
        bands = heads * torch.sigmoid(self.amplitude(hidden)) + self.noise(hidden, noise)
        if self.dc_block is not None:
            bands = self.dc_block(bands)
        audio = self.pqmf(bands)
        if self.harmonic is not None:
            audio = audio + self.harmonic(hidden, self.f0_hz(attributes))
        if self.level is not None:
            lo, hi = self.rms_range[0], self.rms_range[1]
            asked = lo + (attributes[:, self.rms_index] + 1) * 0.5 * (hi - lo)
            audio = self.level(audio, torch.exp(asked) if self.rms_log else asked)
        return (audio, heads) if with_heads else audio
