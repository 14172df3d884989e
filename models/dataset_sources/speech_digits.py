"""`speech-digits`: SC09-like spoken digits "zero" to "nine" synthesised with espeak-ng.

A speaker is an espeak-ng voice (English accents) with a voice variant (male, female,
croaky, Klatt, whispered...), a pitch and a speed; SPEAKERS of them are drawn with a
fixed seed from all combinations. Each speaker says eight of the ten digits (which two
are left out rotates from speaker to speaker, so every digit is equally frequent), each
in its own ~1 s slot (a quarter chunk, like SC09's 1 s clips at 16 kHz), four per chunk.
A speaker is one source: all of their chunks land in the same split, so the valid and
test splits hold unseen speakers. `--limit N` keeps N speakers.
"""
from __future__ import annotations

import io
import itertools
import random
import shutil
import subprocess
from typing import List, Sequence, Tuple

import numpy as np
import soundfile
import soxr
from neurorave.common.errors import UserError
from neurorave.models.dataset_sources import Piece, Unit, UnitResult, chunk_length

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
VOICES = ("en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbcwmd",
          "en-gb-x-gbclan")
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5",
            "croak", "klatt2", "klatt4", "whisper")
PITCHES = (25, 50, 75)
SPEEDS = (130, 165, 200)
SPEAKERS = 220
SLOTS_PER_CHUNK = 4
GAIN = 0.5  # espeak-ng speaks at full scale: leave headroom
DIGITS_PER_SPEAKER = 8

Speaker = Tuple[int, str, str, int, int]  # index, voice, variant, pitch, speed


def check_espeak() -> None:
    if shutil.which("espeak-ng") is None:
        raise UserError("espeak-ng is not installed (apt install espeak-ng)")


def speakers(limit=None) -> List[Speaker]:
    combos = list(itertools.product(VOICES, VARIANTS, PITCHES, SPEEDS))
    chosen = random.Random(0).sample(combos, SPEAKERS)
    n = SPEAKERS if limit is None else min(limit, SPEAKERS)
    return [(i,) + c for i, c in enumerate(chosen[:n])]


def speaker_id(s: Speaker) -> str:
    _, voice, variant, pitch, speed = s
    return f"speech-digits/{voice}+{variant}-p{pitch}-s{speed}"


def units(sr: int, limit=None) -> List[Unit]:
    check_espeak()
    return [Unit(key=speaker_id(s), sources=(speaker_id(s),), work=render_speaker,
                 args=(s, sr), size=1) for s in speakers(limit)]


def say(word: str, voice: str, variant: str, pitch: int, speed: int) -> Tuple[np.ndarray, int]:
    cmd = ["espeak-ng", "-v", f"{voice}+{variant}", "-p", str(pitch), "-s", str(speed),
           "--stdout", word]
    done = subprocess.run(cmd, capture_output=True, timeout=60, check=False)
    if done.returncode != 0 or len(done.stdout) < 100:
        raise UserError(f"espeak-ng failed for voice {voice}+{variant}: "
                        f"{done.stderr.decode('utf-8', 'replace').strip()[:200]}")
    audio, rate = soundfile.read(io.BytesIO(done.stdout), dtype="float32")
    return audio.reshape(len(audio), -1).mean(axis=1), rate


def _trim(audio: np.ndarray) -> np.ndarray:
    loud = np.nonzero(np.abs(audio) > 0.01 * max(1e-9, float(np.abs(audio).max())))[0]
    return audio[loud[0]:loud[-1] + 1] if len(loud) else audio[:0]


def render_speaker(speaker: Speaker, sr: int) -> UnitResult:
    index, voice, variant, pitch, speed = speaker
    rng = random.Random(index)
    left_out = {index % 10, (index + 5) % 10}
    digits = [d for d in range(10) if d not in left_out]
    rng.shuffle(digits)
    chunk = chunk_length(sr)
    slot = chunk // SLOTS_PER_CHUNK
    fade = int(0.02 * sr)
    pieces = []
    for c in range(0, len(digits), SLOTS_PER_CHUNK):
        group: Sequence[int] = digits[c:c + SLOTS_PER_CHUNK]
        audio = np.zeros(chunk, dtype=np.float32)
        onsets = []
        for k, digit in enumerate(group):
            voice_audio, rate = say(DIGITS[digit], voice, variant, pitch, speed)
            word = _trim(soxr.resample(voice_audio, rate, sr) if rate != sr else voice_audio)
            offset = int(rng.uniform(0.02, 0.08) * sr)
            word = word[:slot - offset].copy()
            if len(word) == slot - offset and len(word) > fade:
                word[-fade:] *= np.linspace(1.0, 0.0, fade)  # cut long words without a click
            start = k * slot + offset
            audio[start:start + len(word)] = GAIN * word
            onsets.append(round(start / sr, 4))
        pieces.append(Piece(speaker_id(speaker), audio, {
            "voice": voice, "variant": variant, "pitch": pitch, "speed": speed,
            "digits": [DIGITS[d] for d in group], "onsets_s": onsets}))
    return UnitResult(pieces)
