"""A folder of the user's own audio (wav, flac, ogg, mp3; searched recursively).

Each file is read (soundfile; librosa/audioread as a fallback for what libsndfile cannot
decode), mixed to mono, resampled to the dataset rate (soxr), stripped of silences longer
than MAX_SILENCE_S (shorter pauses are part of the music), and cut into consecutive
chunks; a last piece shorter than half a chunk is dropped, a longer one zero-padded.
Files longer than SEGMENT_SECONDS are read in segments of that length (one work unit
each), so memory stays bounded whatever the length of a recording.
A file is one source: all its chunks (of every segment) land in one split. Unreadable,
empty or silent files are skipped with the reason in the manifest. `--limit N` keeps the
first N files (sorted).
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import soundfile
import soxr
from neurorave.common.errors import UserError
from neurorave.models.dataset_sources import Piece, Unit, UnitResult, chunk_length, fit

EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
MAX_SILENCE_S = 1.0
SILENCE_FRAME_S = 0.05
# A frame is silent below -60 dBFS, or 50 dB under the file's loudest frame.
SILENCE_DBFS = -60.0
SILENCE_BELOW_PEAK_DB = 50.0
SEGMENT_SECONDS = 600.0


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
        for segment, (start, stop) in enumerate(_segments(path)):
            key = rel if segment == 0 else f"{rel}#{segment}"
            result.append(Unit(key=key, sources=(rel,), work=read_file,
                               args=(str(path), rel, segment, start, stop, sr), size=1))
    return result


def _segments(path: Path) -> List[Tuple[int, Optional[int]]]:
    """(start, stop) frame ranges of at most SEGMENT_SECONDS; one open range if unknown."""
    try:
        info = soundfile.info(str(path))
        frames, rate = int(info.frames), int(info.samplerate)
    except Exception:  # not for libsndfile: read (or fail) in one piece, later
        return [(0, None)]
    step = max(1, int(SEGMENT_SECONDS * rate))
    if frames <= step:
        return [(0, None)]
    return [(start, min(frames, start + step)) for start in range(0, frames, step)]


def _read(path: str, start: int = 0, stop: Optional[int] = None) -> Tuple[np.ndarray, int]:
    try:
        audio, rate = soundfile.read(path, start=start, stop=stop, dtype="float32",
                                     always_2d=True)
        return audio.mean(axis=1), rate
    except (RuntimeError, soundfile.LibsndfileError) as first:
        # e.g. an mp3 that an older libsndfile lacks
        import librosa

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                audio, rate = librosa.load(path, sr=None, mono=True)
        except Exception as exc:  # audioread's errors say nothing; libsndfile's say why
            why = getattr(first, "error_string", None) or str(first) or str(exc)
            raise ValueError((why or type(exc).__name__).rstrip(".")) from None
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


def read_file(path: str, rel: str, segment: int, start: int, stop: Optional[int],
              sr: int) -> UnitResult:
    """Chunks of one file (or of one segment of a long file)."""
    whole = segment == 0 and stop is None

    def skip(reason: str) -> UnitResult:
        # A silent stretch of a long recording is not a skipped file.
        return UnitResult(skipped=[{"file": rel, "reason": reason}] if whole else [])

    try:
        audio, rate = _read(path, start, stop)
    except Exception as exc:  # any decoder failure means: skip this file, say why
        reason = str(exc).strip() or type(exc).__name__  # never a blank reason
        return UnitResult(skipped=[{"file": rel, "reason": f"unreadable: {reason}"[:300]}])
    if audio.size == 0:
        return skip("empty (no samples)")
    audio = np.nan_to_num(audio, nan=0.0, posinf=0.0, neginf=0.0)
    if rate != sr:
        audio = soxr.resample(audio, rate, sr).astype(np.float32)
    if float(np.max(np.abs(audio))) < 10 ** (SILENCE_DBFS / 20):
        return skip("silent")
    audio = remove_long_silences(audio, sr)
    chunk = chunk_length(sr)
    count = len(audio) // chunk + (1 if len(audio) % chunk >= chunk // 2 else 0)
    if count == 0:
        return skip(f"too short ({len(audio) / sr:.2f} s of sound, half a chunk is needed)")
    pieces = [Piece(rel, fit(audio[i * chunk:(i + 1) * chunk], chunk),
                    {"file": rel, "segment": segment, "piece": i, "original_sr": rate})
              for i in range(count)]
    return UnitResult(pieces)
