"""Render MIDI with the FluidSynth command line and the FluidR3 GM soundfont."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile
from neurorave.common.errors import UserError
from neurorave.models.dataset_sources.midi import MidiTrack

SOUNDFONT_ENV = "NEURORAVE_SOUNDFONT"
DEFAULT_SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
GAIN = 1.2  # the loudest note of the default gm-notes set peaks at about 0.85
# FluidSynth prints these when it cannot load the soundfont, then renders with none (or
# its own default) and still exits 0: the output is the only sign.
LOAD_FAILURES = ("not a SoundFont", "Failed to load")


def soundfont() -> Path:
    return Path(os.environ.get(SOUNDFONT_ENV, DEFAULT_SOUNDFONT))


def check_fluidsynth() -> None:
    """One clear error if FluidSynth or the soundfont is missing."""
    if shutil.which("fluidsynth") is None:
        raise UserError("fluidsynth is not installed (apt install fluidsynth)")
    sf2 = soundfont()
    if not sf2.is_file():
        raise UserError(f"soundfont {sf2} not found (apt install fluid-soundfont-gm, or set "
                        f"{SOUNDFONT_ENV})")
    check_soundfont(sf2)


def check_soundfont(sf2: Path) -> None:
    """A SoundFont 2 file is a RIFF 'sfbk' whose header gives its length: a damaged or
    truncated one fails here, not as a quietly wrong dataset."""
    try:
        with open(sf2, "rb") as handle:
            head = handle.read(12)
        size = sf2.stat().st_size
    except OSError as exc:
        raise UserError(f"soundfont {sf2}: cannot read ({exc.strerror or exc})") from None
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"sfbk":
        raise UserError(f"soundfont {sf2}: not a SoundFont 2 file (no RIFF sfbk header)")
    declared = int.from_bytes(head[4:8], "little") + 8
    if declared > size:
        raise UserError(f"soundfont {sf2}: truncated (its header gives {declared} bytes, the "
                        f"file has {size})")


def render(track: MidiTrack, seconds: float, sr: int, gain: float = GAIN) -> np.ndarray:
    """Mono float32 audio of `seconds` (exact length) rendered from `track`, dry (no
    reverb or chorus, so that notes stay in their slots)."""
    with tempfile.TemporaryDirectory(prefix="neurorave-fluid-") as tmp:
        mid, wav = Path(tmp) / "in.mid", Path(tmp) / "out.wav"
        track.write(mid, seconds)
        cmd = ["fluidsynth", "-ni", "-q", "-R", "0", "-C", "0", "-g", str(gain),
               "-r", str(sr), "-F", str(wav), "-O", "float", "-T", "wav",
               str(soundfont()), str(mid)]
        done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=600, check=False)
        text = done.stdout.decode("utf-8", "replace").strip().splitlines()
        failed = [line for line in text if any(m in line for m in LOAD_FAILURES)]
        if failed:
            raise UserError(f"fluidsynth could not load the soundfont {soundfont()}: "
                            f"{failed[-1]}")
        if done.returncode != 0 or not wav.exists():
            raise UserError(f"fluidsynth failed: {text[-1] if text else done.returncode}")
        audio, got_sr = soundfile.read(str(wav), dtype="float32", always_2d=True)
    if got_sr != sr:
        raise UserError(f"fluidsynth wrote {got_sr} Hz instead of {sr} Hz")
    mono = audio.mean(axis=1)
    n = int(round(seconds * sr))
    return np.pad(mono, (0, max(0, n - len(mono))))[:n].astype(np.float32)
