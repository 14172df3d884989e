"""Timbre descriptors per latent frame (numpy core of the learning side).

`compute(audio, sr, hop)` returns one float32 curve per attribute with exactly
`len(audio) // hop` frames: frame i describes the samples [i*hop, (i+1)*hop), analysed
through a window of `frame_length(sr, hop)` samples centred on that span (zero padding
at both ends); rms through a shorter one, `rms_length(sr, hop)`, centred the same way.
Any sample rate and any hop >= 32 work, so the curves land on a model's latent frame
rate whatever its compression ratio.

Formulas (cited per function below):
- rms, centroid, bandwidth: librosa's definitions (`librosa.feature.rms`,
  `spectral_centroid`, `spectral_bandwidth` with p=2) on the same frames.
- sharpness (acum): Zwicker & Fastl, "Psychoacoustics: Facts and Models", 3rd ed. 2007,
  ch. 9, with the DIN 45692 (2009) weighting g(z), on a specific-loudness estimate over
  the 24 critical bands (Zwicker 1961 band edges; Zwicker's loudness law, ch. 8; the
  threshold in quiet after Terhardt 1979).
- boominess: Hatano & Hashimoto, "Booming index as a measure for evaluating booming
  sensation", Inter-Noise 2000, in the form used by the AudioCommons timbral models
  (Pearce et al., AudioCommons deliverable D5.2, 2017): the level sum of the
  band-weighted specific loudness times the share of loudness below 280 Hz.
- f0 (Hz) and voicing in [0, 1]: YIN, de Cheveigne & Kawahara, JASA 111(4), 2002
  (difference function, cumulative-mean normalisation, absolute threshold, parabolic
  interpolation), searched from F0_MIN_HZ (or sr / (n_fft / 2) if higher: 31.25 Hz at
  16 kHz) to F0_MAX_HZ. Voicing is 1 - d'(T) at the chosen period T. Frames whose voicing is
  below VOICED (or that are silent) hold the f0 of the nearest earlier voiced frame (the
  first voiced frame for leading ones), so the curve a 1 V/oct CV drives has no jumps to
  zero; a clip without any voiced frame has f0 = 0 throughout.

Robustness: stereo or multichannel input is averaged to mono (the channel axis is the
shorter one); NaN and inf samples are replaced by 0; silent frames give 0 for every
attribute (f0 aside, see above); empty input gives empty curves. No curve holds NaN.
"""
from __future__ import annotations

from typing import Dict, Iterable, Sequence, Tuple

import numpy as np
import scipy.fft

ATTRIBUTES: Tuple[str, ...] = ("rms", "centroid", "bandwidth", "sharpness", "boominess", "f0")
# "voicing" comes with "f0"; it may also be asked for by name.
EXTRA_NAMES: Tuple[str, ...] = ("voicing",)
UNITS: Dict[str, str] = {
    "rms": "",
    "centroid": "Hz",
    "bandwidth": "Hz",
    "sharpness": "acum",
    "boominess": "",
    "f0": "Hz",
    "voicing": "",
}

MIN_HOP = 32
# Analysis window: about 64 ms (a power of two), and at least two hops long.
WINDOW_SECONDS = 0.064
# rms reads about 20 ms (and at least two hops): a centred window reads (window - hop)/2
# of the future, and a causal decoder learns to wait for it before it sounds an attack.
# At 48 kHz with 256-sample frames the spectral window would read 40 ms ahead, this one
# 8 ms. Where two hops exceed 20 ms (16 kHz, 1024-sample frames) both windows are one.
RMS_WINDOW_SECONDS = 0.02
# YIN settings: absolute threshold on d' (paper: 0.1) and the f0 range searched (the
# lowest f0 is also limited by the window: sr / (n_fft / 2), 31.25 Hz at 16 kHz).
YIN_THRESHOLD = 0.1
F0_MIN_HZ = 30.0
F0_MAX_HZ = 2200.0
# Voicing at or above this counts as a voiced frame for the f0 hold.
VOICED = 0.7
# A frame whose mean square is below this (-120 dBFS) counts as silence.
SILENCE_POWER = 1e-12
# Level calibration: a full-scale sine (mean square 0.5) reads 100 dB SPL.
FULL_SCALE_SINE_DB = 100.0
# Zwicker's 24 critical bands (Hz), Zwicker 1961.
BARK_EDGES_HZ = np.array([0, 100, 200, 300, 400, 510, 630, 770, 920, 1080, 1270, 1480, 1720,
                          2000, 2320, 2700, 3150, 3700, 4400, 5300, 6400, 7700, 9500, 12000,
                          15500], dtype=np.float64)
BOOMING_LOW_HZ = 280.0
# Frame samples per block (frames x window): small enough that a block's arrays stay in
# the CPU cache (2-4x faster than large blocks), and memory is bounded for any length.
BLOCK_SAMPLES = 1 << 18


def next_pow2(n: float) -> int:
    return 1 << max(0, int(np.ceil(np.log2(max(1.0, n)))))


def frame_length(sr: int, hop: int) -> int:
    """Analysis window in samples: ~64 ms rounded up to a power of two, >= 2 * hop."""
    return max(next_pow2(WINDOW_SECONDS * sr), next_pow2(2 * hop))


def rms_length(sr: int, hop: int) -> int:
    """rms window in samples: ~20 ms rounded up to a power of two, >= 2 * hop."""
    return min(frame_length(sr, hop), max(next_pow2(RMS_WINDOW_SECONDS * sr),
                                          next_pow2(2 * hop)))


def check_rate(sr: int, hop: int) -> None:
    if int(sr) != sr or sr < 1000:
        raise ValueError(f"sample rate must be an integer >= 1000 Hz, got {sr}")
    if int(hop) != hop or hop < MIN_HOP:
        raise ValueError(f"hop must be an integer >= {MIN_HOP} samples, got {hop}")


def check_names(names: Iterable[str]) -> Tuple[str, ...]:
    names = tuple(names)
    unknown = [n for n in names if n not in ATTRIBUTES + EXTRA_NAMES]
    if unknown:
        raise ValueError(f"unknown descriptor(s) {unknown}; known: "
                         f"{', '.join(ATTRIBUTES + EXTRA_NAMES)}")
    return names


def to_mono(audio: np.ndarray) -> np.ndarray:
    """Float64 mono signal with non-finite samples set to 0."""
    x = np.asarray(audio)
    if x.ndim == 2:
        axis = 0 if x.shape[0] <= x.shape[1] else 1
        x = x.mean(axis=axis) if x.size else x.reshape(-1)
    elif x.ndim != 1:
        raise ValueError(f"audio must be 1-D (mono) or 2-D (channels), got shape {x.shape}")
    x = x.astype(np.float64, copy=True)
    x[~np.isfinite(x)] = 0.0
    return x


def padding(n_fft: int, hop: int, n_frames: int, length: int) -> Tuple[int, int]:
    """Zeros (left, right) so that window i of n_fft samples is centred on frame i."""
    left = n_fft // 2 - hop // 2
    right = max(0, (n_frames - 1) * hop + n_fft - left - length) if n_frames else 0
    return left, right


def analysis_frames(audio: np.ndarray, sr: int, hop: int,
                    n_fft: int = 0) -> Tuple[np.ndarray, int, int]:
    """The zero-padded signal whose frames (length n_fft, step hop, no centring) are ours
    (n_fft: `frame_length` by default; `rms_length` for rms).

    Returns (padded, n_fft, n_frames). `librosa.feature.*(y=padded, n_fft=n_fft,
    hop_length=hop, center=False)[..., :n_frames]` sees exactly the frames `compute` sees.
    """
    check_rate(sr, hop)
    x = to_mono(audio)
    n_fft = n_fft or frame_length(sr, hop)
    n_frames = len(x) // hop
    return np.pad(x, padding(n_fft, hop, n_frames, len(x))), n_fft, n_frames


# ---------------------------------------------------------------------------------------
# Constant tables, shared with the torch version.

def band_matrix(sr: int, n_fft: int) -> np.ndarray:
    """[n_fft//2+1, 24] 0/1 matrix summing FFT-bin power into Zwicker's critical bands."""
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    band = np.searchsorted(BARK_EDGES_HZ, freqs, side="right") - 1
    m = np.zeros((len(freqs), len(BARK_EDGES_HZ) - 1))
    inside = (band >= 0) & (band < m.shape[1])
    m[np.nonzero(inside)[0], band[inside]] = 1.0
    return m


def band_centres() -> Tuple[np.ndarray, np.ndarray]:
    """Centre frequency (Hz, arithmetic) and centre rate (Bark: 0.5 .. 23.5) per band."""
    return 0.5 * (BARK_EDGES_HZ[:-1] + BARK_EDGES_HZ[1:]), np.arange(24) + 0.5


def threshold_in_quiet_db(f_hz: np.ndarray) -> np.ndarray:
    """Terhardt (1979) approximation of the absolute threshold of hearing, dB SPL."""
    k = np.maximum(f_hz, 20.0) / 1000.0
    return 3.64 * k ** -0.8 - 6.5 * np.exp(-0.6 * (k - 3.3) ** 2) + 1e-3 * k ** 4


def sharpness_weights() -> np.ndarray:
    """DIN 45692 g(z) * z per band: g = 1 up to 15.8 Bark, then 0.15 e^{0.42(z-15.8)} + 0.85."""
    _, z = band_centres()
    g = np.where(z <= 15.8, 1.0, 0.15 * np.exp(0.42 * (z - 15.8)) + 0.85)
    return g * z


def booming_weights() -> np.ndarray:
    """Hatano & Hashimoto band weights, 2.13 exp(-0.151 i), i the 1/3-octave band index
    (25 Hz = 1) of the band centre, as tabulated in the AudioCommons booming model."""
    f, _ = band_centres()
    index = (np.log10(f) - np.log10(25.0)) / (np.log10(31.5) - np.log10(25.0)) + 1.0
    return 2.13 * np.exp(-0.151 * index)


def loudness_constants(sr: int, n_fft: int) -> Dict[str, np.ndarray]:
    """Everything the specific-loudness estimate needs for one (sr, n_fft)."""
    f, _ = band_centres()
    window = hann(n_fft)
    # One-sided power per bin -> mean-square contribution of the (unwindowed) signal.
    scale = np.full(n_fft // 2 + 1, 2.0 / (n_fft * np.sum(window ** 2)))
    scale[0] *= 0.5
    if n_fft % 2 == 0:
        scale[-1] *= 0.5
    ltq = threshold_in_quiet_db(f)
    return {
        "bands": band_matrix(sr, n_fft) * scale[:, None],
        "ltq": ltq,
        # Zwicker: N' = 0.08 (E_TQ/E_0)^0.23 [(0.5 + 0.5 E/E_TQ)^0.23 - 1]
        "n_gain": 0.08 * 10.0 ** (0.023 * ltq),
        "sharp_w": sharpness_weights(),
        "boom_w": booming_weights(),
        "low": (f < BOOMING_LOW_HZ).astype(np.float64),
    }


def hann(n: int) -> np.ndarray:
    """Periodic Hann window, as librosa's STFT uses."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def yin_lags(sr: int, n_fft: int) -> Tuple[int, int]:
    """Smallest and largest period (samples) searched; the YIN window is n_fft // 2."""
    tau_max = min(n_fft // 2 - 1, int(np.ceil(sr / F0_MIN_HZ)))
    tau_min = max(2, int(np.floor(sr / F0_MAX_HZ)))
    return tau_min, tau_max


# ---------------------------------------------------------------------------------------
# Per-block computations (frames [F, n_fft], float64).

def _spectral(frames: np.ndarray, sr: int, consts: Dict[str, np.ndarray],
              window: np.ndarray, freqs: np.ndarray, names: Sequence[str],
              out: Dict[str, np.ndarray], sl: slice) -> None:
    mag = np.abs(scipy.fft.rfft(frames * window, axis=1, workers=1))
    total = mag.sum(axis=1)
    live = total > 1e-10
    safe = np.where(live, total, 1.0)
    centroid = (mag @ freqs) / safe
    if "centroid" in names:
        out["centroid"][sl] = np.where(live, centroid, 0.0)
    if "bandwidth" in names:
        spread = (mag * (freqs[None, :] - centroid[:, None]) ** 2).sum(axis=1) / safe
        out["bandwidth"][sl] = np.where(live, np.sqrt(np.maximum(spread, 0.0)), 0.0)
    if "sharpness" in names or "boominess" in names:
        band_ms = (mag * mag) @ consts["bands"]
        specific = _specific_loudness(band_ms, consts)
        loud = specific.sum(axis=1)
        heard = loud > 1e-9
        safe_loud = np.where(heard, loud, 1.0)
        if "sharpness" in names:
            sharp = 0.11 * (specific @ consts["sharp_w"]) / safe_loud
            out["sharpness"][sl] = np.where(heard, sharp, 0.0)
        if "boominess" in names:
            level_sum = 10.0 * np.log10(np.sum(10.0 ** (specific * consts["boom_w"] / 10.0),
                                               axis=1))
            boom = level_sum * (specific @ consts["low"]) / safe_loud
            out["boominess"][sl] = np.where(heard, boom, 0.0)


def _specific_loudness(band_ms: np.ndarray, consts: Dict[str, np.ndarray]) -> np.ndarray:
    """Specific loudness (sone/Bark) per critical band from band mean squares."""
    level = 10.0 * np.log10(np.maximum(band_ms, 1e-20) / 0.5) + FULL_SCALE_SINE_DB
    excess = 10.0 ** ((level - consts["ltq"]) / 10.0)
    return np.maximum(consts["n_gain"] * ((0.5 + 0.5 * excess) ** 0.23 - 1.0), 0.0)


def _yin(frames: np.ndarray, sr: int) -> Tuple[np.ndarray, np.ndarray]:
    """Raw YIN period estimate per frame: (f0 Hz, voicing in [0, 1])."""
    n_fft = frames.shape[1]
    w = n_fft // 2
    tau_min, tau_max = yin_lags(sr, n_fft)
    spec = scipy.fft.rfft(frames, axis=1, workers=1)
    head = scipy.fft.rfft(frames[:, :w], n=n_fft, axis=1, workers=1)
    corr = scipy.fft.irfft(spec * np.conj(head), n=n_fft, axis=1, workers=1)[:, :w + 1]
    csum = np.zeros((len(frames), n_fft + 1))
    np.cumsum(frames ** 2, axis=1, out=csum[:, 1:])
    energy = csum[:, w:w + w + 1] - csum[:, :w + 1]  # window energy at each lag 0..w
    diff = np.maximum(energy[:, :1] + energy - 2.0 * corr, 0.0)
    return _yin_pick(diff, sr, tau_min, tau_max, energy[:, 0] / w)


def _yin_pick(diff: np.ndarray, sr: int, tau_min: int, tau_max: int,
              power: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    # Cumulative-mean-normalised difference d'(tau) = d(tau) tau / sum_{j=1..tau} d(j),
    # needed for lags tau_min-1 .. tau_max+1 only (1 where the sum vanishes: silence).
    lo, hi = tau_min - 1, tau_max + 2
    running = np.cumsum(diff[:, 1:hi], axis=1)[:, lo - 1:]
    ok = running > 1e-12 * np.maximum(diff[:, :1], 1e-30)
    d = np.ones_like(running)
    np.divide(diff[:, lo:hi] * np.arange(lo, hi, dtype=np.float64), running, out=d, where=ok)
    prev, mid, nxt = d[:, :-2], d[:, 1:-1], d[:, 2:]
    # Parabolic interpolation at every lag: the minimum's offset and value. Testing the
    # interpolated value against the threshold keeps short periods that fall between
    # two samples (high notes at 16 kHz) from losing to their double.
    curv = prev - 2.0 * mid + nxt
    half_slope = 0.5 * (prev - nxt)
    shift = np.zeros_like(curv)
    np.divide(half_slope, curv, out=shift, where=curv > 1e-12)
    np.clip(shift, -1.0, 1.0, out=shift)
    lowest = mid - 0.5 * half_slope * shift  # = mid where no parabola (shift 0)
    trough = (mid <= prev) & (mid <= nxt)
    below = trough & (lowest < YIN_THRESHOLD)
    has = below.any(axis=1)
    pick = np.where(has, below.argmax(axis=1), lowest.argmin(axis=1))
    rows = np.arange(len(d))
    period = pick + tau_min + shift[rows, pick]
    f0 = sr / period
    voicing = np.clip(1.0 - lowest[rows, pick], 0.0, 1.0)
    voicing = np.where(power > SILENCE_POWER, voicing, 0.0)
    return f0, voicing


def hold_unvoiced(f0: np.ndarray, voicing: np.ndarray) -> np.ndarray:
    """f0 of unvoiced frames := f0 of the last voiced frame (first voiced for leading ones)."""
    voiced = voicing >= VOICED
    if not voiced.any():
        return np.zeros_like(f0)
    idx = np.where(voiced, np.arange(len(f0)), 0)
    idx = np.maximum.accumulate(idx)
    first = int(np.argmax(voiced))
    idx = np.where(np.arange(len(f0)) < first, first, idx)
    return f0[idx]


def compute(audio: np.ndarray, sr: int, hop: int,
            names: Iterable[str] = ATTRIBUTES) -> Dict[str, np.ndarray]:
    """Descriptor curves of `audio`: {name: float32 [len(audio) // hop]}.

    With "f0" in `names`, "voicing" is returned too. See the module docstring for the
    frames, the formulas and the behaviour on silence, DC, clipping, NaN/inf and stereo.
    """
    names = check_names(names)
    padded, n_fft, n_frames = analysis_frames(audio, sr, hop)
    wanted = set(names)
    if "f0" in wanted or "voicing" in wanted:
        wanted |= {"f0", "voicing"}
    out = {n: np.zeros(n_frames, dtype=np.float64) for n in wanted}
    if n_frames == 0:
        return {n: np.zeros(0, dtype=np.float32) for n in ATTRIBUTES + EXTRA_NAMES
                if n in wanted}
    window = hann(n_fft)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    consts = loudness_constants(sr, n_fft)
    spectral = wanted & {"centroid", "bandwidth", "sharpness", "boominess"}
    view = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop][:n_frames]
    n_rms = rms_length(sr, hop)
    if "rms" in wanted and n_rms != n_fft:
        rms_padded = analysis_frames(audio, sr, hop, n_rms)[0]
        rms_view = np.lib.stride_tricks.sliding_window_view(rms_padded, n_rms)[::hop][:n_frames]
    else:
        rms_view = view
    block = max(16, BLOCK_SAMPLES // n_fft)
    for start in range(0, n_frames, block):
        sl = slice(start, min(n_frames, start + block))
        frames = view[sl]
        if "rms" in wanted:
            out["rms"][sl] = np.sqrt(np.mean(rms_view[sl] ** 2, axis=1))
        if spectral:
            _spectral(frames, sr, consts, window, freqs, tuple(spectral), out, sl)
        if "f0" in wanted:
            out["f0"][sl], out["voicing"][sl] = _yin(frames, sr)
    if "f0" in wanted:
        out["f0"] = hold_unvoiced(out["f0"], out["voicing"])
    order = [n for n in ATTRIBUTES + EXTRA_NAMES if n in wanted]
    return {n: np.nan_to_num(out[n], nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)
            for n in order}


def stack(curves: Dict[str, np.ndarray], names: Sequence[str] = ATTRIBUTES) -> np.ndarray:
    """[len(names), frames] float32 array of the named curves."""
    return np.stack([curves[n] for n in names]).astype(np.float32)
