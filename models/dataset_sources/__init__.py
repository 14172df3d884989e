"""Sources of training audio for `neurorave dataset build`.

Each source lists its work units up front (deterministic, cheap): a unit renders or reads
a few pieces of audio (one chunk each) in a worker process and is the step at which an
interrupted build resumes. Every piece names the source it comes from (a note, a
speaker, a file), which decides its split.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Tuple

import numpy as np


@dataclass
class Piece:
    source: str
    audio: np.ndarray  # float32 [chunk]
    meta: Dict[str, Any] = field(default_factory=dict)


@dataclass
class UnitResult:
    pieces: List[Piece] = field(default_factory=list)
    skipped: List[Dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Unit:
    key: str  # unique within a build: what resuming skips
    sources: Tuple[str, ...]  # the source ids its pieces may carry (known before rendering)
    work: Callable[..., UnitResult]  # a module-level function (runs in a worker process)
    args: Tuple[Any, ...]
    size: int = 1  # items it holds, for the progress bar


def chunk_length(sr: int) -> int:
    """Default chunk: about 4.1 s (65536 samples at 16 kHz), a multiple of 2048 samples so
    that every hop from 64 to 2048 divides it."""
    return max(2048, int(round(4.096 * sr / 2048)) * 2048)


def fit(audio: np.ndarray, length: int) -> np.ndarray:
    """Zero-pad or cut to `length` samples (float32)."""
    audio = np.asarray(audio, dtype=np.float32)
    return np.pad(audio, (0, max(0, length - len(audio))))[:length]
