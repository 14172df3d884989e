"""Reconstruction distances between original and resynthesised audio, per item.

- Multi-scale STFT distance: the training loss's definition (`losses.MultiScaleSTFTLoss`,
  RAVE's: per window size, L1 of magnitudes plus L1 of log magnitudes, normalised STFT,
  75 % overlap), over windows 2048, 1024, 512, 256 and 128 samples (RAVE v1's).
- Mel L1: mean absolute difference of log-mel spectrograms in dB (librosa, 128 mels,
  2048-point FFT, hop 256, floor -100 dB).
The paper's exact scalings are not published, so these figures compare models within
one report; the paper's row is shown for orientation, not as the same ruler.

A perceptual (JND-style) distance is not computed: the only PyPI packages (cdpam 0.0.6,
dpam 0.0.4) were last released in 2021, ship ~100 MB of pickled weights and pull in
resampy; `PERCEPTUAL` says so in metrics.json.
"""
from __future__ import annotations

from typing import Dict, Sequence

import librosa
import numpy as np
import torch
from neurorave.models.losses import MultiScaleSTFTLoss

MSTFT_SCALES = (2048, 1024, 512, 256, 128)
MEL = {"n_fft": 2048, "hop_length": 256, "n_mels": 128, "floor_db": -100.0}
PERCEPTUAL = {"available": False,
              "reason": "no maintained PyPI package: cdpam/dpam were last released in 2021 "
                        "and ship ~100 MB of pickled weights"}


def mstft_distance(x: np.ndarray, y: np.ndarray, scales: Sequence[int] = MSTFT_SCALES
                   ) -> np.ndarray:
    """Per item [N]: multi-scale STFT distance of x [N, T] and y [N, T]."""
    length = min(x.shape[-1], y.shape[-1])
    usable = [s for s in scales if s <= length] or [min(scales)]
    loss = MultiScaleSTFTLoss(usable)
    out = np.zeros(len(x))
    with torch.no_grad():
        for i in range(len(x)):
            a = torch.from_numpy(np.ascontiguousarray(x[i, :length], np.float32))[None]
            b = torch.from_numpy(np.ascontiguousarray(y[i, :length], np.float32))[None]
            out[i] = float(loss(a, b))
    return out


def log_mel_db(audio: np.ndarray, sr: int) -> np.ndarray:
    mel = librosa.feature.melspectrogram(
        y=np.asarray(audio, np.float32), sr=sr, n_fft=MEL["n_fft"],
        hop_length=MEL["hop_length"], n_mels=MEL["n_mels"], power=2.0)
    return np.maximum(10 * np.log10(np.maximum(mel, 1e-30)), MEL["floor_db"])


def mel_l1(x: np.ndarray, y: np.ndarray, sr: int) -> np.ndarray:
    """Per item [N]: mean |log-mel(x) - log-mel(y)| in dB."""
    length = min(x.shape[-1], y.shape[-1])
    return np.array([float(np.mean(np.abs(log_mel_db(a[:length], sr) - log_mel_db(b[:length], sr))))
                     for a, b in zip(x, y)])


def reconstruction_metrics(x: np.ndarray, y: np.ndarray, sr: int) -> Dict[str, Dict[str, float]]:
    """Mean, std and per-item values of every distance."""
    out: Dict[str, Dict[str, float]] = {}
    for name, values in (("mstft", mstft_distance(x, y)), ("mel_l1", mel_l1(x, y, sr))):
        out[name] = {"mean": float(values.mean()), "std": float(values.std()),
                     "items": [float(v) for v in values]}
    return out
