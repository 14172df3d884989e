"""The control loss: the decoder must produce the attributes it is asked for.

The fader only takes attribute information out of z; nothing in F-RAVE's losses checks
that the decoder then follows a curve it was never given in training (a training item's
attributes always come with the z of the same item, so the decoder may read the
loudness envelope from z and ignore the rms input). This loss closes that loop: the
decoder resynthesises each item from its own z with some attribute curves replaced by
a target (another item's curve, a ramp, a sine, a sawtooth, or the mean of the other's
curve and its own: the moves of the evaluation protocol, with random ranges), the
descriptors are measured on the output, and their L1 distance to the curves asked for
(in the normalised units the decoder is conditioned on) is the loss. The curves that
were not replaced are in it too, so a change of one attribute that drags another along
costs as well. Where the rms asked for is silent only rms is scored: the other
descriptors of silence read 0 whatever is asked; for the same reason the synthetic
targets of those descriptors take their values from audible frames.

f0 is never replaced and never measured here: the harmonic source plays the f0 it is
given by construction, and YIN's choice of period has no useful gradient.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Tuple

import torch

KINDS = ("other", "ramp", "sine", "sawtooth", "mean")
CHANGE_PROBABILITY = 0.5
# The descriptors' first frames see the decoder's warm-up (zero state) and the zero padding
# before the chunk.
SKIP_FRAMES = 2
UNCONTROLLED = ("f0",)


def controlled(names: Sequence[str]) -> torch.Tensor:
    """Indices of the attributes the loss replaces and measures."""
    return torch.tensor([i for i, n in enumerate(names) if n not in UNCONTROLLED],
                        dtype=torch.long)


def target_curves(curves: torch.Tensor, which: torch.Tensor, gen: torch.Generator,
                  silence: Optional[Tuple[int, float]] = None) -> torch.Tensor:
    """Normalised curves [B, A, F] with about half of the `which` attributes of every item
    replaced by a target. Synthetic targets span two values drawn from the batch's own
    frames of that attribute (a range the data holds), at 0.5 to 2 cycles per chunk.
    With `silence` (see `control_loss`), the values of attributes other than rms are
    drawn from audible frames only: a silent frame's centroid is the convention 0, not a
    sound that a loud frame could be asked to have."""
    b, _, frames = curves.shape
    dev = curves.device

    def uniform(*shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=gen, device=dev)

    out = curves.clone()
    n = len(which)
    own = curves[:, which]                                   # [B, N, F]
    other = torch.roll(own, 1, dims=0)
    pool = own.transpose(0, 1).reshape(n, -1)                # [N, B * F]
    weights = torch.ones_like(pool)
    if silence is not None:
        rms, level = silence
        heard = (curves[:, rms] >= level).reshape(1, -1).expand_as(pool)
        spectral = (which != rms)[:, None].expand_as(pool)
        weights = torch.where(spectral & heard.any(1, keepdim=True) & ~heard,
                              torch.zeros_like(pool), weights)
    picks = torch.multinomial(weights, 2 * b, replacement=True, generator=gen)  # [N, 2B]
    start = pool.gather(1, picks[:, :b]).T[..., None]        # [B, N, 1]
    end = pool.gather(1, picks[:, b:]).T[..., None]
    t = torch.linspace(0, 1, frames, device=dev)
    cycles = (0.5 + 1.5 * uniform(b, n, 1))
    phase = uniform(b, n, 1)
    shapes = {
        "other": other,
        "ramp": start + (end - start) * t,
        "sine": start + (end - start) * (0.5 + 0.5 * torch.sin(2 * torch.pi * (cycles * t
                                                                                + phase))),
        "sawtooth": start + (end - start) * torch.remainder(cycles * t + phase, 1.0),
        "mean": (other + own) / 2,
    }
    kind = (uniform(b, n) * len(KINDS)).long().clamp_max(len(KINDS) - 1)
    target = own.clone()
    for k, name in enumerate(KINDS):
        pick = (kind == k)[..., None]
        target = torch.where(pick, shapes[name], target)
    change = (uniform(b, n) < CHANGE_PROBABILITY)[..., None]
    out[:, which] = torch.where(change, target, own)
    return out


def control_loss(decode: Callable[[torch.Tensor], torch.Tensor],
                 describe: Callable[[torch.Tensor], torch.Tensor],
                 curves: torch.Tensor, which: torch.Tensor, gen: torch.Generator,
                 silence: Optional[Tuple[int, float]] = None) -> torch.Tensor:
    """Mean L1 (normalised units) between the `which` attributes asked for and measured.

    `decode(curves [B, A, F])` -> audio [B, T]; `describe(audio)` -> the `which`
    attributes' normalised curves [B, N, F]. `silence` = (index of rms, normalised
    level): where the rms asked for is below it, only rms is scored (the other
    descriptors of silence read 0 whatever is asked: a term nothing can lower).
    """
    asked = target_curves(curves, which, gen, silence)
    measured = describe(decode(asked))
    skip = SKIP_FRAMES if curves.shape[-1] > 2 * SKIP_FRAMES else 0
    error = (measured - asked[:, which])[..., skip:].abs()
    if silence is None:
        return error.mean()
    rms, level = silence
    heard = (asked[:, rms, skip:] >= level).to(error.dtype)[:, None, :]  # [B, 1, F]
    weight = torch.where((which == rms)[None, :, None], torch.ones_like(error),
                         heard.expand_as(error))
    return (error * weight).sum() / weight.sum().clamp_min(1.0)
