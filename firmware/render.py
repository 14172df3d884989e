"""`neurorave render BUNDLE --patch PATCH --seconds S --out OUT.wav [--seed N]`.

The daemon's voice run offline: the patch's CVs are sampled at each latent frame and the
same `VoiceModel` renders frame by frame on ONNX Runtime's CPU engine, as fast as the
machine goes. Gate 1 lands on its own sample: the frame it falls in is cut there and
the gate's frame begins at it (as in the daemon, which can only start it a few device
blocks after the edge); gate 2's edges go to the next frame. The same bundle,
patch and seed give the same samples. Encoder turns and presses in the patch are
ignored (there is no menu offline); settings are the defaults.
"""
import math
import os
import time
from typing import Any, List, Optional, Tuple

import numpy as np
from neurorave.common.errors import UserError
from neurorave.firmware.controls import ControlSettings
from neurorave.firmware.state_files import default_settings
from neurorave.firmware.voice import (
    FADE_S,
    GATE_FADE_S,
    ControlInputs,
    VoiceModel,
    crossfade,
    fade,
    output_stage,
)
from neurorave.hardware.patch import Patch, load_patch
from neurorave.models.runtime.bundle import load_bundle
from neurorave.models.runtime.engines import EngineUnavailable

MAX_SECONDS = 3600.0  # an hour: 690 MB of float32 at 48 kHz, held in memory
PCM16 = ("WAV", "AIFF", "FLAC", "W64", "CAF", "RF64")  # written as 16-bit samples
WRITABLE = PCM16 + ("OGG",)  # any rate, mono: what render writes without asking more


def render(bundle_path: str, patch: Patch, seconds: float, seed: int = 0,
           sample_rate: Optional[int] = None, level: Optional[float] = None,
           engine: str = "ort-cpu") -> Tuple[np.ndarray, int]:
    """Audio [samples] at `sample_rate` (default: the bundle's) and that rate."""
    if not (math.isfinite(seconds) and 0 < seconds <= MAX_SECONDS):
        raise UserError(f"--seconds must be above 0 and at most {MAX_SECONDS:.0f}, got {seconds}")
    patch.check_fits(4, 2)
    settings = default_settings()
    rate = int(sample_rate or load_bundle(bundle_path).sample_rate)
    try:
        model = VoiceModel(bundle_path, rate, engine,
                           settings=ControlSettings.from_settings(settings), seed=seed)
    except EngineUnavailable as exc:
        raise UserError(str(exc)) from None
    model.reset()
    gain = float(settings["output_level"] if level is None else level)
    total = int(round(seconds * rate))
    cut_fade = int(GATE_FADE_S * rate)
    edges = [e for e in patch.events(-1.0, seconds) if e.kind == "gate"]  # in time order
    volts = [0.0] * 4
    gate2_high = False
    blocks: List[np.ndarray] = []
    written = 0
    taken, boundary = 0, 0.0   # edges[taken:] up to `boundary` go to the next frame
    interrupted: Optional[np.ndarray] = None
    while written < total:
        rise1 = rise2 = False
        end = taken
        while end < len(edges) and edges[end].t <= boundary:
            event = edges[end]
            if event.jack == 0:
                rise1 = rise1 or bool(event.value)
            else:
                rise2 = rise2 or bool(event.value)
                gate2_high = bool(event.value)
            end += 1
        for i in range(4):
            v = patch.cv_volts(i, boundary)
            volts[i] = 0.0 if v is None else float(v)
        before = model.snapshot()
        block = model.render(ControlInputs(volts, rise1, rise2, gate2_high,
                                           float(settings["prior_temperature"])))
        if interrupted is not None:
            block = crossfade(interrupted, block)
            interrupted = None
        frame_end = (written + len(block)) / rate
        # A gate-1 rise inside this frame cuts it there: the gate's frame (rendered again
        # from this one's start, as the daemon does) begins at the gate's own sample.
        k = end
        while k < len(edges) and edges[k].t < frame_end and \
                not (edges[k].jack == 0 and edges[k].value):
            k += 1
        gate_at = edges[k].t if k < len(edges) and edges[k].t < frame_end else None
        cut = len(block)
        if gate_at is not None and before is not None:
            cut = max(0, int(round(gate_at * rate)) - written)
        if gate_at is not None and before is not None and cut < len(block):
            interrupted = block[cut:cut + cut_fade] if cut else None
            block = block[:cut]
            model.restore(before)    # and the edges this frame took are taken again
            boundary = gate_at
        else:
            taken, boundary = end, frame_end
        blocks.append(block)
        written += len(block)
    tail = model.resampler.process(np.zeros(0, np.float32), last=True)
    audio = np.concatenate(blocks + [tail])[: int(round(seconds * rate))]
    audio = fade(audio, True, int(FADE_S * rate))
    return output_stage(audio, gain), rate


def check_output(path: str) -> str:
    """The sound file format `path` asks for by its extension; a path that cannot be
    written is refused before any rendering (one line, not after minutes of work)."""
    import soundfile

    kind = os.path.splitext(path)[1][1:].upper()
    kind = {"AIF": "AIFF", "OGA": "OGG"}.get(kind, kind)
    if kind not in WRITABLE or kind not in soundfile.available_formats():
        given = "." + kind.lower() if kind else "none"
        raise UserError(f"{path}: name the sound file with a known extension "
                        f"(.wav, .flac, .ogg, .aiff, ...), not {given}")
    if os.path.isdir(path):
        raise UserError(f"{path}: is a folder; name the sound file to write")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UserError(f"{path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise UserError(f"{path}: the folder {folder} is not writable")
    return kind


def main(args: Any) -> int:
    import soundfile

    patch = load_patch(args.patch)
    seconds = args.seconds if args.seconds is not None else patch.seconds
    if seconds is None:
        raise UserError(f"{args.patch}: how long? give --seconds, or `seconds` in the patch")
    kind = check_output(args.out)
    start = time.perf_counter()
    audio, rate = render(args.bundle, patch, seconds, args.seed)
    elapsed = time.perf_counter() - start
    try:
        soundfile.write(args.out, audio, rate, subtype="PCM_16" if kind in PCM16 else None,
                        format=kind)
    except (RuntimeError, OSError, ValueError, TypeError) as exc:
        raise UserError(f"{args.out}: cannot write ({exc})") from None
    print(f"wrote {args.out}: {len(audio) / rate:.2f} s at {rate} Hz in {elapsed:.2f} s "
          f"({len(audio) / rate / max(elapsed, 1e-9):.1f}x real time)")
    return 0
