"""The instrument evaluates itself: a bundle played as the module plays it, 1 V/oct
pitch accuracy and long prior runs. `neurorave evaluate` hands `play_checks` to the
models' evaluation (which measures the model alone and imports nothing of the firmware).

Both drive the daemon's own `VoiceModel` (ONNX Runtime, frame by frame) at the bundle's
sample rate, with panel volts and gate edges as a patch would give them:
- pitch: a calibrated 1 V/oct CV steps through three octaves one semitone at a time,
  gate 1 striking each note; the output's f0 (the project's YIN) is compared with
  the note asked for, in cents;
- generation: minutes of the prior (or latent exploration) with CV1 moving latent 0,
  no attribute held by a CV and gate 1 clocking phrases, checked for NaN, clipping
  and silence. The patch asks for a phrase at every gate and for nothing else: every
  gate must be answered by sound within ANSWER_S of its rise (gates with less than
  ANSWER_S of audio after them are not judged), and no silence may last longer than
  a gate period plus ANSWER_S (a note that dies at once, then a next gate answered
  late). A short note that dies away before the next gate, as a plucked or struck one
  does, is what the patch asked for. The longest silence is reported as well.
  Clipping is counted where the module would clip: after the default `output_level`
  (0.8), a sample at or beyond full scale (the output stage's soft limiter rounds it
  off instead, which is still heard as saturation). `limited_samples` counts those the
  limiter bends at all (over its knee); `peak` is read after the output stage,
  `model_peak` before it. `answer_ms` (p10/p50/p90) times each gate's answer: from the
  gate (a frame start) until the sound first reaches -12 dB of its peak over the next
  ANSWER_PEAK_S and +6 dB over the level just before the gate (a gate that raises
  nothing counts as ANSWER_PEAK_S): the part of gate-to-sound latency that the model
  makes (the daemon's own, gate to the first sample of the gate's frame, is benchmarked
  apart).
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
from neurorave.firmware.calibration import CVCalibration, PitchCalibration
from neurorave.firmware.controls import ControlSettings
from neurorave.firmware.state_files import default_settings
from neurorave.firmware.voice import ControlInputs, VoiceModel, output_stage
from neurorave.models.audibility import AUDIBLE_RMS  # quieter windows are gaps

PITCH_BASE_HZ = 130.8128           # C3 at 0 V, the module's default
PITCH_SEMITONES = 36               # three octaves, 0 V to 3 V
NOTE_S = 1.0
PITCH_CV = 3                       # CV4 reads 1 V/oct in this test
LEVEL_CV = 1                       # CV2 holds rms, loud enough to hear a pitch
LEVEL_VOLTS = 2.0
GENERATION_GATE1_S = 2.0           # a new phrase every 2 s
SILENCE_WINDOW_S = 0.05
ANSWER_S = 0.5                     # a gate must be heard within this long
ANSWER_PEAK_S = 0.25               # a gate's answer is timed against its peak in this long
ANSWER_BEFORE_S = 0.02             # and against the level this long before the gate
CLIP_LEVEL = 1.0


def _voice(bundle_path: str, seed: int, pitch: bool):
    """The daemon's voice on ONNX Runtime's CPU engine: in pitch mode with an ideal
    calibration and rms held loud, or with every attribute left to the model."""
    from neurorave.models.runtime.bundle import load_bundle

    bundle = load_bundle(bundle_path)
    names = [a.name for a in bundle.attributes]
    if pitch:
        assign: Dict[str, Optional[int]] = {"cv2": names.index("rms") if "rms" in names
                                            else None, "cv3": None, "cv4": None}
        # CV mode "hold": the rms CV holds the level, as a player holding a note does.
        settings = ControlSettings(cv_assign=assign, pitch_mode=True, base_hz=PITCH_BASE_HZ,
                                   cv_mode="hold")
        # An ideal input: 1 V reads 1 V, 12 semitones per volt.
        calibration = CVCalibration(pitch=PitchCalibration(PITCH_CV, 12.0, 1.0))
    else:
        settings = ControlSettings(cv_assign={"cv2": None, "cv3": None, "cv4": None})
        calibration = CVCalibration()
    model = VoiceModel(bundle_path, bundle.sample_rate, "ort-cpu", 1, settings, calibration,
                       seed=seed)
    model.reset()
    return model


def _play(model, seconds: float, controls: Callable[[float], List[float]],
          gate1_every: float, gate2_every: Optional[float]) -> Dict[str, Any]:
    """Audio at the bundle's rate; a NaN stops the run and is reported, not raised."""
    call_s = model.samples_per_call / model.sample_rate
    calls = int(np.ceil(seconds / call_s))
    blocks: List[np.ndarray] = []
    nan_at: Optional[float] = None
    gate1_at: List[float] = []  # when gate 1 really rose: at the start of a call
    def period(c: int, every: float) -> int:
        # Which gate period call c starts in; the epsilon keeps a call that starts on
        # a period boundary from rounding into the one before (which rose twice).
        return int(np.floor(c * call_s / every + 1e-9))

    for c in range(calls):
        t = c * call_s
        rise1 = c == 0 or period(c, gate1_every) != period(c - 1, gate1_every)
        rise2 = gate2_every is not None and c > 0 and \
            period(c, gate2_every) != period(c - 1, gate2_every)
        try:
            blocks.append(model.render(ControlInputs(controls(t), rise1, rise2, False)))
        except FloatingPointError:
            nan_at = t
            break
        if rise1:
            gate1_at.append(t)
    audio = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
    return {"audio": audio, "nan_at": nan_at, "gate1_at": gate1_at}


def pitch_accuracy(bundle_path: str, seed: int = 0) -> Dict[str, Any]:
    """Median and spread of the output's f0 error over 37 semitones in 1 V/oct mode."""
    from neurorave.models.descriptors import compute

    model = _voice(bundle_path, seed, pitch=True)
    if model.mapper.pitch_cv() is None:
        return {"available": False, "why": "the model has no f0 attribute"}
    volts_at = [0.0] * 4

    def controls(t: float) -> List[float]:
        note = min(int(t / NOTE_S), PITCH_SEMITONES)
        volts_at[PITCH_CV] = note / 12.0
        volts_at[LEVEL_CV] = LEVEL_VOLTS
        return list(volts_at)

    seconds = (PITCH_SEMITONES + 1) * NOTE_S
    played = _play(model, seconds, controls, NOTE_S, None)
    audio, sr = played["audio"], model.sample_rate
    hop = 256
    curves = compute(audio, sr, hop, ["f0"])
    f0, voicing = curves["f0"], curves["voicing"]
    notes = []
    for note in range(PITCH_SEMITONES + 1):
        target = PITCH_BASE_HZ * 2.0 ** (note / 12.0)
        # The middle half of each note: past the attack and the smoothing glide.
        a = int((note + 0.25) * NOTE_S * sr / hop)
        b = min(int((note + 0.75) * NOTE_S * sr / hop), len(f0))
        voiced = f0[a:b][voicing[a:b] > 0.5]
        measured = float(np.median(voiced)) if voiced.size >= (b - a) // 2 and b > a else None
        cents = None if measured is None or measured <= 0 else \
            float(1200.0 * np.log2(measured / target))
        notes.append({"volts": note / 12.0, "target_hz": target, "measured_hz": measured,
                      "cents": cents})
    errors = np.array([abs(n["cents"]) if n["cents"] is not None else np.inf for n in notes])
    return {"available": True, "notes": notes, "octaves": PITCH_SEMITONES / 12,
            "median_abs_cents": float(np.median(errors)),
            "p90_abs_cents": float(np.quantile(errors, 0.9, method="higher")),
            "unvoiced_notes": int(sum(n["cents"] is None for n in notes)),
            "nan_at_s": played["nan_at"]}


def gate_answers(quiet: np.ndarray, gate1_at: List[float]) -> Tuple[int, int]:
    """(gates judged, gates unanswered): `quiet` [windows of SILENCE_WINDOW_S] is True
    where silent; a gate is judged when ANSWER_S of audio follows its rise, and
    unanswered when all of that is silent."""
    per_gate = int(round(ANSWER_S / SILENCE_WINDOW_S))
    first = [int(np.floor(t / SILENCE_WINDOW_S + 1e-9)) for t in gate1_at]
    judged = [i for i in first if i + per_gate <= len(quiet)]
    return len(judged), int(sum(bool(quiet[i:i + per_gate].all()) for i in judged))


def answer_delays(audio: np.ndarray, sr: int, gate1_at: List[float]) -> List[float]:
    """Milliseconds from each gate until the sound it starts is heard: until the 1 ms rms
    first reaches a quarter (-12 dB) of its peak over the ANSWER_PEAK_S after the gate and
    twice (+6 dB) the rms of the ANSWER_BEFORE_S before it. A gate that raises nothing
    that far (sound that merely goes on) counts as ANSWER_PEAK_S. Gates with less audio
    than that after them, or silence after them, are not timed."""
    n = max(1, int(round(0.001 * sr)))
    env = np.sqrt(np.convolve(np.asarray(audio, np.float64) ** 2, np.ones(n) / n, "same"))
    span, before = int(ANSWER_PEAK_S * sr), int(ANSWER_BEFORE_S * sr)
    delays = []
    for t in gate1_at:
        lo = int(round(t * sr))
        seg = env[lo:lo + span]
        if len(seg) < span or seg.max() < AUDIBLE_RMS:
            continue
        prior = audio[max(0, lo - before):lo].astype(np.float64)
        level = float(np.sqrt(np.mean(prior ** 2))) if len(prior) else 0.0
        heard = np.flatnonzero(seg >= max(0.25 * seg.max(), 2.0 * level))
        delays.append(1e3 * (heard[0] if len(heard) else span) / sr)
    return delays


def play_generation(bundle_path: str, seconds: float, seed: int = 0) -> Dict[str, Any]:
    """The generation patch played: {"audio", "sample_rate", "hop", "nan_at", "gate1_at",
    "mode"}."""
    model = _voice(bundle_path, seed, pitch=False)

    def controls(t: float) -> List[float]:
        # A slow sine on CV1 (latent 0); the other CVs are unassigned.
        return [2.0 * np.sin(2 * np.pi * 0.05 * t), 0.0, 0.0, 0.0]

    played = _play(model, seconds, controls, GENERATION_GATE1_S, None)
    return {**played, "sample_rate": model.sample_rate, "hop": model.frame_size,
            "mode": model.mode}


def generation_check(bundle_path: str, seconds: float, seed: int = 0) -> Dict[str, Any]:
    """NaN, clipping and silence over `seconds` of playing under a moving patch."""
    played = play_generation(bundle_path, seconds, seed)
    audio, sr = played["audio"], played["sample_rate"]
    window = int(SILENCE_WINDOW_S * sr)
    n = len(audio) // window
    rms = np.sqrt(np.mean(audio[:n * window].reshape(n, window).astype(np.float64) ** 2,
                          axis=1)) if n else np.zeros(0)
    quiet = rms < AUDIBLE_RMS
    longest = run = 0
    for q in quiet:
        run = run + 1 if q else 0
        longest = max(longest, run)
    judged, unanswered = gate_answers(quiet, played["gate1_at"])
    answers = answer_delays(audio, sr, played["gate1_at"])
    limit_s = GENERATION_GATE1_S + ANSWER_S
    level = float(default_settings()["output_level"])
    scaled = audio * np.float32(level)
    out = output_stage(audio, level)    # what the module sends to its DAC
    clipped = int(np.sum(np.abs(scaled) >= CLIP_LEVEL))
    limited = int(np.sum(out != scaled))
    model_peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    longest_s = longest * SILENCE_WINDOW_S
    result = {"seconds": len(audio) / sr, "asked_seconds": float(seconds), "mode": played["mode"],
              "nan_at_s": played["nan_at"],
              "peak": float(np.max(np.abs(out))) if out.size else 0.0,
              "model_peak": model_peak, "output_level": level, "clipped_samples": clipped,
              "limited_samples": limited,
              "rms_dbfs_median": float(20 * np.log10(max(np.median(rms), 1e-12))) if n else None,
              "longest_silence_s": longest_s, "silence_limit_s": limit_s,
              "gates": judged, "unanswered_gates": unanswered,
              "answer_ms": {f"p{q}": float(np.percentile(answers, q)) if answers else None
                            for q in (10, 50, 90)},
              "silent_fraction": float(quiet.mean()) if n else 1.0}
    result["ok"] = bool(played["nan_at"] is None and clipped == 0 and unanswered == 0
                        and longest_s <= limit_s)
    return result


def play_checks(bundle_path: str, seconds: float, seed: int = 0) -> Dict[str, Any]:
    return {"pitch": pitch_accuracy(bundle_path, seed),
            "generation": generation_check(bundle_path, seconds, seed)}
