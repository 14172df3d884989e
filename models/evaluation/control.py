"""The paper's control protocol: change attribute curves, resynthesise, measure.

For every evaluated item the encoder gives z; the item's own (measured) attribute curves
are then replaced, for one attribute or a random set of 2, 3 or 4 at once (8 distinct
sets of each size, each attribute with a random modulator), by a target: another test
item's curve (`other`), a ramp up, a ramp down, a sine, a sawtooth, or the mean of the
other item's curve and the original (`mean`). The decoder resynthesises
from z and the new curves, the descriptors are measured on the output, and each changed
attribute is compared with its target: L1 (in normalised units, [-1, 1] by the model's
own range, so attributes compare) and (Pearson + 1) / 2. The leak is how far the
attributes that were *not* changed move: L1 between their curves measured on the
controlled output and on the plain reconstruction.

Silence. Where a frame is silent its spectral descriptors read 0, a convention, not a
measurement: no sound has a centroid of 0 Hz. So, for every attribute but rms:
- the synthetic modulators span the 5th to 95th percentile of the items' own curves over
  their audible frames (original rms >= AUDIBLE_RMS), a range of sounds the model has
  heard; over all frames the low end was the silence convention, and a ramp up then
  asked a loud attack to sound like silence;
- L1 and `corr` are read over the frames where the rms asked for is audible (the
  original's where rms is not an attribute or not changed). A model that obeys its rms
  input is silent there, whatever brightness is asked: scoring those frames rewarded
  models that ignore rms.
rms itself is scored over every frame (silence is a real rms) and spans its full range.
`corr_all_frames` keeps the correlation over every frame, silence included.

Synthetic modulators make one or two cycles per chunk.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
from neurorave.models.audibility import AUDIBLE_RMS

MODULATORS = ("other", "ramp_up", "ramp_down", "sine", "sawtooth", "mean")
SET_SIZES = (2, 3, 4)
# Random sets per size, distinct: with 6 attributes there are 15 pairs, 20 triples and 15
# quadruples; 4 draws let one hard set decide the mean.
SETS_PER_SIZE = 8
SKIP_FRAMES = 2  # the descriptors' first frames see the zero padding before the chunk
MIN_AUDIBLE_FRAMES = 4


def synthetic(kind: str, frames: int, lo: float, hi: float, phase: float = 0.0) -> np.ndarray:
    t = np.arange(frames) / max(frames - 1, 1)
    if kind == "ramp_up":
        shape = t
    elif kind == "ramp_down":
        shape = 1 - t
    elif kind == "sine":
        shape = 0.5 + 0.5 * np.sin(2 * np.pi * (2 * t + phase))
    elif kind == "sawtooth":
        shape = (2 * t + phase) % 1.0
    else:
        raise ValueError(kind)
    return lo + (hi - lo) * shape


def modulate(kind: str, original: np.ndarray, other: np.ndarray, lo: float, hi: float,
             phase: float = 0.0) -> np.ndarray:
    """Target curve [F] (normalised units) for one attribute of one item."""
    if kind == "other":
        return other.copy()
    if kind == "mean":
        return (other + original) / 2
    return synthetic(kind, len(original), lo, hi, phase)


def pearson01(a: np.ndarray, b: np.ndarray) -> float:
    """(Pearson + 1) / 2 of two curves; 0.5 (no correlation) where either is flat."""
    a, b = a - a.mean(), b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    if den < 1e-12:
        return 0.5
    return float((np.clip((a * b).sum() / den, -1, 1) + 1) / 2)


def _score(measured: np.ndarray, target: np.ndarray, reference: np.ndarray,
           changed: np.ndarray, heard: Optional[np.ndarray] = None,
           everywhere: Sequence[int] = ()) -> Dict[str, float]:
    """measured/target/reference [N, A, F]; changed [N, A] bool; heard [N, F] bool: the
    frames where sound is asked for; attributes in `everywhere` (rms) are scored on every
    frame -> L1, corr, corr_all_frames, leak."""
    s = slice(SKIP_FRAMES if measured.shape[-1] > 2 * SKIP_FRAMES else 0, None)
    l1, corr, corr_all, leak, leak_corr = [], [], [], [], []
    for i in range(measured.shape[0]):
        loud = heard[i, s] if heard is not None else np.ones_like(measured[i, 0, s], bool)
        for a in range(measured.shape[1]):
            m = measured[i, a, s]
            if changed[i, a]:
                t = target[i, a, s]
                corr_all.append(pearson01(m, t))
                frames = np.ones_like(loud) if a in everywhere else loud
                if frames.sum() >= MIN_AUDIBLE_FRAMES:  # an item asked to be silent: no reading
                    l1.append(np.abs(m[frames] - t[frames]).mean())
                    corr.append(pearson01(m[frames], t[frames]))
            else:
                leak.append(np.abs(m - reference[i, a, s]).mean())
                leak_corr.append(pearson01(m, reference[i, a, s]))
    mean = lambda v: float(np.mean(v)) if v else float("nan")  # noqa: E731
    return {"l1": mean(l1), "corr": mean(corr), "corr_all_frames": mean(corr_all),
            "leak_l1": mean(leak), "leak_corr": mean(leak_corr)}


def _average(rows: Sequence[Dict[str, float]]) -> Dict[str, float]:
    keys = rows[0].keys()
    return {k: float(np.nanmean([r[k] for r in rows])) if any(np.isfinite(r[k]) for r in rows)
            else float("nan") for k in keys}


def attribute_sets(rng: np.random.Generator, n_attr: int, size: int, count: int
                   ) -> List[List[int]]:
    """`count` distinct random sets of `size` attributes (all of them where fewer exist):
    a set drawn twice would weigh twice in the mean and leave a combination unheard."""
    possible = math.comb(n_attr, size) if size <= n_attr else 0
    sets: List[List[int]] = []
    while len(sets) < min(count, possible):
        chosen = sorted(rng.choice(n_attr, size, replace=False).tolist())
        if chosen not in sets:
            sets.append(chosen)
    return sets


def run_control(synth, z: np.ndarray, curves_norm: np.ndarray, recon_norm: np.ndarray,
                seed: int = 0, sets_per_size: int = SETS_PER_SIZE, keep: int = 1,
                progress: Optional[Callable[[Any], Any]] = None,
                audible: Optional[np.ndarray] = None) -> Dict[str, Any]:
    """The whole protocol on items with latents z [N, L, F] and normalised curves [N, A, F].

    `recon_norm`: the curves measured on the plain reconstruction (the leak's reference).
    `audible` [N, F]: the frames where the original is heard (rms >= AUDIBLE_RMS).
    Returns the metrics and, for the first `keep` items, example curves and audio.
    """
    n, n_attr, frames = curves_norm.shape
    names = list(synth.attributes)
    rms = names.index("rms") if "rms" in names else None
    everywhere = [rms] if rms is not None else []
    rng = np.random.default_rng(seed)
    lo = np.percentile(curves_norm, 5, axis=(0, 2))
    hi = np.percentile(curves_norm, 95, axis=(0, 2))
    if audible is not None and audible.sum() >= MIN_AUDIBLE_FRAMES:
        for a in range(n_attr):
            if a != rms:  # the range of sounds, not of silence's convention
                lo[a], hi[a] = np.percentile(curves_norm[:, a][audible], [5, 95])
    # Another item for every item (a derangement when there are two or more).
    partner = np.roll(np.arange(n), 1) if n > 1 else np.zeros(1, dtype=int)
    jobs: List[Dict[str, Any]] = []
    for a in range(n_attr):
        for kind in MODULATORS:
            jobs.append({"size": 1, "attributes": [a], "kinds": [kind]})
    for size in SET_SIZES:
        for chosen in attribute_sets(rng, n_attr, size, sets_per_size):
            kinds = [str(rng.choice(MODULATORS)) for _ in chosen]
            jobs.append({"size": size, "attributes": chosen, "kinds": kinds})
    iterator = progress(jobs) if progress else jobs
    examples: List[Dict[str, Any]] = []
    for job in iterator:
        target = curves_norm.copy()
        changed = np.zeros((n, n_attr), dtype=bool)
        phase = float(rng.uniform(0, 1))
        for a, kind in zip(job["attributes"], job["kinds"]):
            for i in range(n):
                target[i, a] = modulate(kind, curves_norm[i, a], curves_norm[partner[i], a],
                                        lo[a], hi[a], phase)
            changed[:, a] = True
        raw = synth.denormalise(target)
        audio = synth.decode(z, raw, seed=seed)
        measured = synth.normalise(synth.describe(audio))
        heard = raw[:, rms] >= AUDIBLE_RMS if rms is not None else audible
        job["score"] = _score(measured, target, recon_norm, changed, heard, everywhere)
        for i in range(min(keep, n)):
            examples.append({"item": i, "size": job["size"],
                             "attributes": [names[a] for a in job["attributes"]],
                             "kinds": job["kinds"], "target": target[i], "measured": measured[i],
                             "original": curves_norm[i], "audio": audio[i]})
    single: Dict[str, Any] = {}
    for a, name in enumerate(names):
        rows = {j["kinds"][0]: j["score"] for j in jobs
                if j["size"] == 1 and j["attributes"] == [a]}
        # "all": the average over modulators (one of which is called "mean").
        single[name] = {"modulators": rows, "all": _average(list(rows.values()))}
    by_size: Dict[str, Any] = {"1": _average([single[nm]["all"] for nm in names])}
    for size in SET_SIZES:
        rows = [j for j in jobs if j["size"] == size]
        if rows:
            by_size[str(size)] = {**_average([j["score"] for j in rows]),
                                  "sets": [{"attributes": [names[a] for a in j["attributes"]],
                                            "modulators": j["kinds"], **j["score"]}
                                           for j in rows]}
    return {"metrics": {"modulators": list(MODULATORS), "single": single, "by_size": by_size,
                        "modulator_range_norm": {nm: [float(lo[a]), float(hi[a])]
                                                 for a, nm in enumerate(names)}},
            "examples": examples}
