"""Batched torch version of `neurorave.models.descriptors` for training.

`compute_batch(audio [B, T], sr, hop, names)` returns [B, len(names), T // hop] with the
same frames (rms's shorter window too), formulas and edge-case rules as the numpy core
(see its docstring for the citations); it agrees with `descriptors.compute` to 1e-4
(relative) and runs on the device the audio is on. The work is done in float64 by
default (`dtype`), because the YIN period choice and the unvoiced-f0 hold are discrete
decisions that float32 rounding could flip; the result has the input's floating dtype.
"""
from __future__ import annotations

from typing import Dict, Iterable, Optional, Tuple

import numpy as np
import torch
from neurorave.models import descriptors as core
from neurorave.models.descriptors import ATTRIBUTES, UNITS  # noqa: F401  (re-exported)

# Samples of frame data (batch x frames x window) per block: bounds the working memory
# whatever the batch, length and rate. On a GPU big blocks keep it busy (about 1 GiB per
# intermediate at float64); on a CPU cache-sized blocks are 4-6x faster.
BLOCK_ELEMENTS = 1 << 27
BLOCK_ELEMENTS_CPU = 1 << 18


def _tables(sr: int, n_fft: int, device: torch.device, dtype: torch.dtype
            ) -> Dict[str, torch.Tensor]:
    consts = core.loudness_constants(sr, n_fft)
    consts["window"] = core.hann(n_fft)
    consts["freqs"] = np.fft.rfftfreq(n_fft, 1.0 / sr)
    return {k: torch.as_tensor(v, dtype=dtype, device=device) for k, v in consts.items()}


def _prepare(audio: torch.Tensor, sr: int, hop: int, dtype: torch.dtype, n_fft: int = 0
             ) -> Tuple[torch.Tensor, int, int]:
    core.check_rate(sr, hop)
    if audio.dim() == 1:
        audio = audio[None]
    if audio.dim() != 2:
        raise ValueError(f"audio must be [B, T], got shape {tuple(audio.shape)}")
    x = audio.to(dtype)
    x = torch.where(torch.isfinite(x), x, torch.zeros_like(x))
    n_fft = n_fft or core.frame_length(sr, hop)
    n_frames = x.shape[1] // hop
    return torch.nn.functional.pad(x, core.padding(n_fft, hop, n_frames, x.shape[1])), \
        n_fft, n_frames


def _frames(padded: torch.Tensor, n_fft: int, hop: int, sl: slice) -> torch.Tensor:
    """Frames `sl` [B, frames, n_fft], unfolded from their own stretch of `padded`: a
    block sliced from one unfold of the whole signal has, in backward, a zero gradient
    the size of every frame (25 MB at 48 kHz for a batch of eight, filled anew for each
    block: a third of a control-loss training step)."""
    return padded[:, sl.start * hop:(sl.stop - 1) * hop + n_fft].unfold(-1, n_fft, hop)


def _sqrt(x: torch.Tensor) -> torch.Tensor:
    """sqrt with a finite gradient at 0 (the control loss differentiates the curves)."""
    x = x.clamp_min(0.0)
    live = x > 0
    return torch.where(live, torch.where(live, x, torch.ones_like(x)).sqrt(), torch.zeros_like(x))


def _spectral(frames: torch.Tensor, tab: Dict[str, torch.Tensor], wanted: set,
              out: Dict[str, torch.Tensor], sl: slice) -> None:
    mag = torch.fft.rfft(frames * tab["window"], dim=-1).abs()
    freqs = tab["freqs"]
    total = mag.sum(-1)
    live = total > 1e-10
    safe = torch.where(live, total, torch.ones_like(total))
    centroid = (mag @ freqs) / safe
    zero = torch.zeros_like(total)
    if "centroid" in wanted:
        out["centroid"][:, sl] = torch.where(live, centroid, zero)
    if "bandwidth" in wanted:
        spread = (mag * (freqs - centroid[..., None]) ** 2).sum(-1) / safe
        out["bandwidth"][:, sl] = torch.where(live, _sqrt(spread), zero)
    if "sharpness" in wanted or "boominess" in wanted:
        band_ms = (mag * mag) @ tab["bands"]
        level = 10.0 * torch.log10(band_ms.clamp_min(1e-20) / 0.5) + core.FULL_SCALE_SINE_DB
        excess = 10.0 ** ((level - tab["ltq"]) / 10.0)
        specific = (tab["n_gain"] * ((0.5 + 0.5 * excess) ** 0.23 - 1.0)).clamp_min(0.0)
        loud = specific.sum(-1)
        heard = loud > 1e-9
        safe_loud = torch.where(heard, loud, torch.ones_like(loud))
        if "sharpness" in wanted:
            sharp = 0.11 * (specific @ tab["sharp_w"]) / safe_loud
            out["sharpness"][:, sl] = torch.where(heard, sharp, zero)
        if "boominess" in wanted:
            level_sum = 10.0 * torch.log10((10.0 ** (specific * tab["boom_w"] / 10.0)).sum(-1))
            boom = level_sum * (specific @ tab["low"]) / safe_loud
            out["boominess"][:, sl] = torch.where(heard, boom, zero)


def _yin(frames: torch.Tensor, sr: int) -> Tuple[torch.Tensor, torch.Tensor]:
    n_fft = frames.shape[-1]
    w = n_fft // 2
    tau_min, tau_max = core.yin_lags(sr, n_fft)
    spec = torch.fft.rfft(frames, dim=-1)
    head = torch.fft.rfft(frames[..., :w], n=n_fft, dim=-1)
    corr = torch.fft.irfft(spec * head.conj(), n=n_fft, dim=-1)[..., :w + 1]
    csum = torch.nn.functional.pad(torch.cumsum(frames ** 2, dim=-1), (1, 0))
    energy = csum[..., w:2 * w + 1] - csum[..., :w + 1]
    diff = (energy[..., :1] + energy - 2.0 * corr).clamp_min(0.0)
    power = energy[..., 0] / w

    lo, hi = tau_min - 1, tau_max + 2
    running = torch.cumsum(diff[..., 1:hi], dim=-1)[..., lo - 1:]
    ok = running > 1e-12 * diff[..., :1].clamp_min(1e-30)
    lags = torch.arange(lo, hi, dtype=diff.dtype, device=diff.device)
    d = torch.where(ok, diff[..., lo:hi] * lags / torch.where(ok, running,
                                                              torch.ones_like(running)),
                    torch.ones_like(running))
    prev, mid, nxt = d[..., :-2], d[..., 1:-1], d[..., 2:]
    curv = prev - 2.0 * mid + nxt
    half_slope = 0.5 * (prev - nxt)
    good = curv > 1e-12
    shift = torch.where(good, half_slope / torch.where(good, curv, torch.ones_like(curv)),
                        torch.zeros_like(curv)).clamp(-1.0, 1.0)
    lowest = mid - 0.5 * half_slope * shift
    trough = (mid <= prev) & (mid <= nxt)
    below = trough & (lowest < core.YIN_THRESHOLD)
    has = below.any(-1)
    first_below = torch.argmax(below.to(torch.uint8), dim=-1)
    pick = torch.where(has, first_below, torch.argmin(lowest, dim=-1))[..., None]
    period = pick[..., 0].to(d.dtype) + tau_min + shift.gather(-1, pick)[..., 0]
    f0 = sr / period
    voicing = (1.0 - lowest.gather(-1, pick)[..., 0]).clamp(0.0, 1.0)
    voicing = torch.where(power > core.SILENCE_POWER, voicing, torch.zeros_like(voicing))
    return f0, voicing


def hold_unvoiced(f0: torch.Tensor, voicing: torch.Tensor) -> torch.Tensor:
    """Batched version of `descriptors.hold_unvoiced` (per row)."""
    voiced = voicing >= core.VOICED
    n = f0.shape[-1]
    steps = torch.arange(n, device=f0.device).expand_as(f0)
    idx = torch.where(voiced, steps, torch.zeros_like(steps))
    idx = torch.cummax(idx, dim=-1).values
    first = torch.argmax(voiced.to(torch.uint8), dim=-1, keepdim=True)
    idx = torch.where(steps < first, first.expand_as(idx), idx)
    held = f0.gather(-1, idx)
    return torch.where(voiced.any(-1, keepdim=True), held, torch.zeros_like(held))


def compute_batch(audio: torch.Tensor, sr: int, hop: int,
                  names: Iterable[str] = ATTRIBUTES,
                  dtype: Optional[torch.dtype] = torch.float64) -> torch.Tensor:
    """Descriptor curves of a batch: [B, T] -> [B, len(names), T // hop].

    `names` may include "voicing". `dtype` is the working precision (float64 by default;
    float32 is faster on GPUs but may differ from the numpy core where YIN's choice is a
    near tie).
    """
    names = core.check_names(names)
    out_dtype = audio.dtype if audio.is_floating_point() else torch.float32
    work = dtype or out_dtype
    padded, n_fft, n_frames = _prepare(audio, sr, hop, work)
    batch = padded.shape[0]
    wanted = set(names)
    if "f0" in wanted or "voicing" in wanted:
        wanted |= {"f0", "voicing"}
    out = {n: torch.zeros(batch, n_frames, dtype=work, device=audio.device) for n in wanted}
    if n_frames:
        tab = _tables(sr, n_fft, audio.device, work)
        n_rms = core.rms_length(sr, hop)
        rms_padded = padded if n_rms == n_fft else _prepare(audio, sr, hop, work, n_rms)[0]
        spectral = wanted & {"centroid", "bandwidth", "sharpness", "boominess"}
        budget = BLOCK_ELEMENTS_CPU if audio.device.type == "cpu" else BLOCK_ELEMENTS
        block = max(1, budget // (batch * n_fft))
        for start in range(0, n_frames, block):
            sl = slice(start, min(n_frames, start + block))
            frames = _frames(padded, n_fft, hop, sl)
            if "rms" in wanted:
                out["rms"][:, sl] = _sqrt((_frames(rms_padded, n_rms, hop, sl) ** 2).mean(-1))
            if spectral:
                _spectral(frames, tab, spectral, out, sl)
            if "f0" in wanted:
                out["f0"][:, sl], out["voicing"][:, sl] = _yin(frames, sr)
        if "f0" in wanted:
            out["f0"] = hold_unvoiced(out["f0"], out["voicing"])
    curves = torch.stack([torch.nan_to_num(out[n], nan=0.0, posinf=0.0, neginf=0.0)
                          for n in names], dim=1)
    return curves.to(out_dtype)
