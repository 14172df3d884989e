"""`neurorave render BUNDLE --patch PATCH --seconds S --out OUT.wav [--seed N]`.

The daemon's voice run offline: the patch's CVs are sampled at each latent frame and the
same `VoiceModel` renders frame by frame on ONNX Runtime's CPU engine, as fast as the
machine goes. Gate 1 lands on its own sample: the frame it falls in is cut there and
the gate's frame begins at it (as in the daemon, which can only start it a few device
blocks after the edge); gate 2's edges go to the next frame. The same bundle,
patch and seed give the same samples.

The patch's [settings] are the menu's to start with (`patch_settings.py`; calibration
"ideal" unless it asks for another), and its encoder turns and presses drive the real
menu, whose actions the daemon's own `MenuActions` carries out, from the first frame
that starts at or after each one; nothing is ever saved. BUNDLE is one bundle, which
plays whatever model the patch names, or a folder of bundles, in which the patch's
`model` chooses one (and the menu's Model page lists them all).
"""
import math
import os
import sys
import time
from typing import Any, List, Optional, Tuple

import numpy as np
from neurorave.common.errors import UserError
from neurorave.firmware.calibration import CVCalibration
from neurorave.firmware.controls import ControlSettings
from neurorave.firmware.menu import Menu, ModelEntry
from neurorave.firmware.menu_actions import MenuActions
from neurorave.firmware.model_loading import scan_models
from neurorave.firmware.patch_settings import calibration_for, read, settings_for
from neurorave.firmware.state_files import calibration_file, default_settings
from neurorave.firmware.voice import (
    FADE_S,
    GATE_FADE_S,
    ControlInputs,
    VoiceModel,
    crossfade,
    fade,
    output_stage,
)
from neurorave.hardware.interfaces import ButtonPress, EncoderStep
from neurorave.hardware.patch import Patch, PatchEvent, load_patch
from neurorave.models.runtime.bundle import load_bundle
from neurorave.models.runtime.engines import EngineUnavailable

MAX_SECONDS = 3600.0  # an hour: 690 MB of float32 at 48 kHz, held in memory
PCM16 = ("WAV", "AIFF", "FLAC", "W64", "CAF", "RF64")  # written as 16-bit samples
WRITABLE = PCM16 + ("OGG",)  # any rate, mono: what render writes without asking more


def _folder_name(path: str) -> str:
    return os.path.basename(os.path.abspath(path))


def choose_bundle(path: str, patch: Patch) -> Tuple[str, List[ModelEntry], str]:
    """(the bundle to play, the models the menu lists, a note for the player or "")."""
    wanted = read(patch).model
    if os.path.isfile(os.path.join(path, "model.json")):
        bundle = load_bundle(path, verify_files=False)
        entry = ModelEntry(path, bundle.name, bundle.sample_rate,
                           tuple(a.name for a in bundle.attributes))
        note = ""
        if wanted and wanted not in (_folder_name(path), bundle.name):
            note = (f"{patch.source} names model {wanted}; playing {_folder_name(path)}, "
                    f"as the command line says")
        return path, [entry], note
    models = scan_models(path)
    if not models:
        load_bundle(path)  # says why this is not a bundle
    if not wanted:
        raise UserError(f"{patch.source}: settings.model: missing; {path} is a folder of "
                        f"bundles: name one in the patch, or give the bundle's folder")
    for entry in models:
        if _folder_name(entry.folder) == wanted:
            if entry.error:
                raise UserError(f"{patch.source}: settings.model: {wanted}: {entry.error}")
            return entry.folder, models, ""
    known = ", ".join(_folder_name(m.folder) for m in models)
    raise UserError(f"{patch.source}: settings.model: {wanted!r} is not in {path} ({known})")


def module_calibration() -> CVCalibration:
    """The calibration file in the state folder, as the daemon reads it."""
    loaded = calibration_file().load()
    if loaded.damaged:
        print(f"neurorave render: {loaded.report}", file=sys.stderr)
    return CVCalibration.from_state(loaded.data)


class _State:
    """What `MenuActions` keeps of the daemon's `StateKeeper`; offline nothing is saved."""

    def __init__(self, settings: dict, calibration: CVCalibration):
        self.settings = settings
        self.calibration = calibration

    def changed(self) -> None:
        pass

    def save_calibration(self, calibration: CVCalibration) -> None:
        self.calibration = calibration


class _Voice:
    """The voice's part that `MenuActions` sets: the model, level and temperature."""

    def __init__(self, model: VoiceModel):
        self.model = model
        self.level = 0.8
        self.temperature = 1.0


class _Loader:
    """A model the menu chose: swapped in at the next frame, as the voice does."""

    def __init__(self) -> None:
        self.pending: Optional[str] = None

    def load(self, folder: str, at_start: bool = False) -> None:
        self.pending = folder


class _Light:
    def __init__(self) -> None:
        self.state = "playing"

    def set(self, state: str) -> None:
        self.state = state


def _gesture(event: PatchEvent) -> Any:
    t_ns = int(round(event.t * 1e9))
    return EncoderStep(int(event.value), t_ns) if event.kind == "turn" \
        else ButtonPress(str(event.value), t_ns)


def render(bundle_path: str, patch: Patch, seconds: float, seed: int = 0,
           sample_rate: Optional[int] = None, level: Optional[float] = None,
           engine: str = "ort-cpu") -> Tuple[np.ndarray, int]:
    """Audio [samples] at `sample_rate` (default: the bundle's) and that rate. `level`
    replaces the output level of the settings (and of the menu) throughout."""
    if not (math.isfinite(seconds) and 0 < seconds <= MAX_SECONDS):
        raise UserError(f"--seconds must be above 0 and at most {MAX_SECONDS:.0f}, got {seconds}")
    patch.check_fits(4, 2)
    path, models, _ = choose_bundle(bundle_path, patch)
    bundle = load_bundle(path)
    names = [a.name for a in bundle.attributes]
    settings = settings_for(patch, default_settings(), names, _folder_name(path))
    state = _State(settings, calibration_for(patch, CVCalibration(), module_calibration))
    rate = int(sample_rate or bundle.sample_rate)

    def make(folder: str) -> VoiceModel:
        try:
            model = VoiceModel(folder, rate, engine,
                               settings=ControlSettings.from_settings(state.settings),
                               calibration=state.calibration, seed=seed)
        except EngineUnavailable as exc:
            raise UserError(str(exc)) from None
        model.reset()
        return model

    model = make(path)
    menu = Menu(settings, models, names)
    menu.playing = _folder_name(path)
    voice, loader, light = _Voice(model), _Loader(), _Light()
    # The daemon's own handling of what the menu asks for (duck-typed parts, offline).
    actions = MenuActions(state, voice, menu, loader, light)  # type: ignore[arg-type]
    actions.apply_settings()
    total = int(round(seconds * rate))
    cut_fade = int(GATE_FADE_S * rate)
    events = patch.events(-1.0, seconds)  # in time order
    edges = [e for e in events if e.kind == "gate"]
    gestures = [e for e in events if e.kind != "gate"]
    volts = [0.0] * 4
    gate1_high = gate2_high = False
    blocks: List[np.ndarray] = []
    written = 0
    taken, boundary = 0, 0.0   # edges[taken:] up to `boundary` go to the next frame
    gestured = 0               # gestures[:gestured] have reached the menu
    interrupted: Optional[np.ndarray] = None
    fading_in = False
    while written < total:
        while gestured < len(gestures) and gestures[gestured].t <= boundary:
            event = gestures[gestured]
            actions.act(menu.handle(_gesture(event)))
            gestured += 1
            if light.state == "calibrating":
                raise UserError(f"{patch.source}: the encoder {event.kind} at {event.t:g} s "
                                f"starts a calibration capture, which render does not play; "
                                f"set [settings.calibration] instead")
        for i in range(4):
            v = patch.cv_volts(i, boundary)
            volts[i] = 0.0 if v is None else float(v)
        gain = float(voice.level if level is None else level)
        if loader.pending is not None:
            # As the voice swaps: the old model fades out over a frame, the new one in;
            # the gates meanwhile go to the new model's first frame.
            folder, loader.pending = loader.pending, None
            block = fade(model.render(ControlInputs(volts, False, False, gate2_high,
                                                    voice.temperature, 0, gate1_high)), False,
                         int(FADE_S * rate))
            model = voice.model = make(folder)
            menu.playing = _folder_name(folder)
            menu.set_attributes([a.name for a in model.bundle.attributes])
            fading_in, interrupted = True, None
            blocks.append(block * gain)
            written += len(block)
            boundary = written / rate
            continue
        rise1 = rise2 = False
        end = taken
        while end < len(edges) and edges[end].t <= boundary:
            event = edges[end]
            if event.jack == 0:
                rise1 = rise1 or bool(event.value)
                gate1_high = bool(event.value)
            else:
                rise2 = rise2 or bool(event.value)
                gate2_high = bool(event.value)
            end += 1
        before = model.snapshot()
        block = model.render(ControlInputs(volts, rise1, rise2, gate2_high,
                                           float(voice.temperature), 0, gate1_high))
        if fading_in:
            block = fade(block, True, int(FADE_S * rate))
            fading_in = False
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
        blocks.append(block * gain)
        written += len(block)
    tail = model.resampler.process(np.zeros(0, np.float32), last=True)
    audio = np.concatenate(blocks + [tail * gain])[: int(round(seconds * rate))]
    audio = fade(audio, True, int(FADE_S * rate))
    return output_stage(audio, 1.0), rate


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
    read(patch)  # a bad [settings] is one line before anything loads
    seconds = args.seconds if args.seconds is not None else patch.seconds
    if seconds is None:
        raise UserError(f"{args.patch}: how long? give --seconds, or `seconds` in the patch")
    kind = check_output(args.out)
    _, _, note = choose_bundle(args.bundle, patch)
    if note:
        print(f"neurorave render: {note}", file=sys.stderr)
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
