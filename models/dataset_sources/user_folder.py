"""A folder of the user's own audio (wav, flac, ogg, mp3; searched recursively).

Each file is read (soundfile; librosa/audioread as a fallback for what libsndfile cannot
decode), mixed to mono, resampled to the dataset rate (soxr), stripped of silences longer
than MAX_SILENCE_S (shorter pauses are part of the music), and cut into consecutive
chunks; a last piece shorter than half a chunk is dropped, a longer one zero-padded.
A file is one source: all its chunks land in one split. Unreadable, empty or silent files
are skipped with the reason in the manifest. `--limit N` keeps the first N files (sorted).
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import numpy as np
import soundfile
import soxr
from neurorave.firmware.errors import UserError
from neurorave.models.dataset_sources import Piece, Unit, UnitResult, chunk_length, fit

EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
MAX_SILENCE_S = 1.0
SILENCE_FRAME_S = 0.05
# A frame is silent below -60 dBFS, or 50 dB under the file's loudest frame.
SILENCE_DBFS = -60.0
SILENCE_BELOW_PEAK_DB = 50.0


def audio_files(folder: Path) -> List[Path]:
    return sorted(p for p in folder.rglob("*")
                  if p.is_file() and p.suffix.lower() in EXTENSIONS)


def units(folder: Path, sr: int, limit=None) -> List[Unit]:
    if not folder.is_dir():
        raise UserError(f"--source {folder}: not gm-notes, gm-drums, speech-digits or a folder")
    files = audio_files(folder)
    if not files:
        raise UserError(f"{folder}: no audio files ({', '.join(EXTENSIONS)}) found in it or "
                        "below it")
    if limit is not None:
        files = files[:limit]
    result = []
    for path in files:
        rel = path.relative_to(folder).as_posix()
        result.append(Unit(key=rel, sources=(rel,), work=read_file,
                           args=(str(path), rel, sr), size=1))
    return result


def _read(path: str) -> Tuple[np.ndarray, int]:
    try:
        audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
        return audio.mean(axis=1), rate
    except (RuntimeError, soundfile.LibsndfileError):  # e.g. an mp3 older libsndfile lacks
        import librosa

        audio, rate = librosa.load(path, sr=None, mono=True)
        return audio.astype(np.float32), int(rate)


def remove_long_silences(audio: np.ndarray, sr: int) -> np.ndarray:
    hop = max(1, int(SILENCE_FRAME_S * sr))
    n = len(audio) // hop
    if n == 0:
        return audio
    frames = audio[:n * hop].reshape(n, hop)
    level = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-20)
    silent = level < max(SILENCE_DBFS, level.max() - SILENCE_BELOW_PEAK_DB)
    keep = ~silent
    longest = int(round(MAX_SILENCE_S / SILENCE_FRAME_S))
    start = None
    for i in range(n + 1):  # keep silent runs up to `longest` frames
        if i < n and silent[i]:
            start = i if start is None else start
            continue
        if start is not None and i - start <= longest:
            keep[start:i] = True
        start = None
    kept = frames[keep].reshape(-1)
    return np.concatenate([kept, audio[n * hop:]]) if not silent[-1] else kept


def read_file(path: str, rel: str, sr: int) -> UnitResult:
    try:
        audio, rate = _read(path)
    except Exception as exc:  # any decoder failure means: skip this file, say why
        return UnitResult(skipped=[{"file": rel, "reason": f"unreadable: {exc}".strip()[:300]}])
    if audio.size == 0:
        return UnitResult(skipped=[{"file": rel, "reason": "empty (no samples)"}])
    audio = np.nan_to_num(audio, nan=0.0, posinf=0.0, neginf=0.0)
    if rate != sr:
        audio = soxr.resample(audio, rate, sr).astype(np.float32)
    if float(np.max(np.abs(audio))) < 10 ** (SILENCE_DBFS / 20):
        return UnitResult(skipped=[{"file": rel, "reason": "silent"}])
    audio = remove_long_silences(audio, sr)
    chunk = chunk_length(sr)
    count = len(audio) // chunk + (1 if len(audio) % chunk >= chunk // 2 else 0)
    if count == 0:
        return UnitResult(skipped=[{"file": rel, "reason": f"too short ({len(audio) / sr:.2f} s "
                                                         f"of sound, half a chunk is needed)"}])
    pieces = [Piece(rel, fit(audio[i * chunk:(i + 1) * chunk], chunk),
                    {"file": rel, "piece": i, "original_sr": rate})
              for i in range(count)]
    return UnitResult(pieces)
