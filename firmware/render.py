"""`neurorave render BUNDLE --patch PATCH --seconds S --out OUT.wav [--seed N]`.

The daemon's voice run offline: the patch's CVs are sampled at each latent frame, its
gate edges land on the frame they fall in, and the same `VoiceModel` renders frame by
frame on ONNX Runtime's CPU engine, as fast as the machine goes. The same bundle,
patch and seed give the same samples. Encoder turns and presses in the patch are
ignored (there is no menu offline); settings are the defaults.
"""
import os
import time
from typing import Any, List, Optional, Tuple

import numpy as np
from neurorave.firmware.controls import ControlSettings
from neurorave.firmware.errors import UserError
from neurorave.firmware.state_files import default_settings
from neurorave.firmware.voice import FADE_S, ControlInputs, VoiceModel, fade, output_stage
from neurorave.hardware.patch import Patch, load_patch
from neurorave.models.runtime.bundle import load_bundle
from neurorave.models.runtime.engines import EngineUnavailable


def render(bundle_path: str, patch: Patch, seconds: float, seed: int = 0,
           sample_rate: Optional[int] = None, level: Optional[float] = None,
           engine: str = "ort-cpu") -> Tuple[np.ndarray, int]:
    """Audio [samples] at `sample_rate` (default: the bundle's) and that rate."""
    if not seconds > 0:
        raise UserError(f"--seconds must be positive, got {seconds}")
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
    call_s = model.samples_per_call / model.sample_rate
    calls = int(np.ceil(seconds / call_s))
    volts = [0.0] * 4
    gate2_high = False
    blocks: List[np.ndarray] = []
    for c in range(calls):
        t0, t1 = (c - 1) * call_s, c * call_s
        rise1 = rise2 = False
        for event in patch.events(t0 if c else -1.0, t1):
            if event.kind != "gate":
                continue
            if event.jack == 0 and event.value:
                rise1 = True
            elif event.jack == 1:
                rise2 = rise2 or bool(event.value)
                gate2_high = bool(event.value)
        for i in range(4):
            v = patch.cv_volts(i, t1)
            volts[i] = 0.0 if v is None else float(v)
        blocks.append(model.render(ControlInputs(volts, rise1, rise2, gate2_high,
                                                 float(settings["prior_temperature"]))))
    tail = model.resampler.process(np.zeros(0, np.float32), last=True)
    audio = np.concatenate(blocks + [tail])[: int(round(seconds * rate))]
    audio = fade(audio, True, int(FADE_S * rate))
    return output_stage(audio, gain), rate


def main(args: Any) -> int:
    import soundfile

    if not os.path.isfile(args.patch):
        raise UserError(f"{args.patch}: no such patch file")
    patch = load_patch(args.patch)
    seconds = args.seconds if args.seconds is not None else patch.seconds
    if seconds is None:
        raise UserError(f"{args.patch}: how long? give --seconds, or `seconds` in the patch")
    start = time.perf_counter()
    audio, rate = render(args.bundle, patch, seconds, args.seed)
    elapsed = time.perf_counter() - start
    folder = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(folder):
        raise UserError(f"{args.out}: the folder {folder} does not exist")
    try:
        soundfile.write(args.out, audio, rate, subtype="PCM_16")
    except (RuntimeError, OSError, ValueError) as exc:
        raise UserError(f"{args.out}: cannot write ({exc})") from None
    print(f"wrote {args.out}: {len(audio) / rate:.2f} s at {rate} Hz in {elapsed:.2f} s "
          f"({len(audio) / rate / max(elapsed, 1e-9):.1f}x real time)")
    return 0
