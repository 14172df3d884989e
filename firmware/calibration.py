"""Calibration of the CV inputs: per-CV offsets and the 1 V/oct pitch scale (pure logic).

Where it plugs in: the calibration wizard of the menu feeds `capture_*` with the panel
volts it polled (from the board's linear map, `hardware/`); the result is stored in the
calibration file (`state_files.calibration_file()`) through `to_state()` / `from_state()`;
the control mapper (`controls.py`) applies `CVCalibration.apply()` to every reading and
`PitchCalibration.to_f0()` in 1 V/oct mode.

1 V/oct (REFERENCES.md, Eurorack conventions): the player patches 1 V then 3 V from a
trusted source; the difference spans two octaves, so scale = 24 semitones / difference
and the 1 V reading anchors the offset. A difference far from 2 V means a wrong patch
or a broken input, and is refused rather than stored.
"""
import math
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

CV_COUNT = 4
# The two-octave span read by a healthy input: 2 V within +-20 % (op-amp and ADC gain).
PITCH_SPAN_MIN_V = 1.6
PITCH_SPAN_MAX_V = 2.4
# How far the 1 V reading may sit from 1 V (input offset error).
PITCH_ANCHOR_TOLERANCE_V = 0.5
# With nothing patched an input reads about 0 V; more than this means something is patched.
OFFSET_MAX_V = 0.5
# A steady reading varies less than this (peak to peak) while it is captured.
STEADY_SPREAD_V = 0.03
# f0 at 0 V after calibration: C3.
DEFAULT_BASE_HZ = 130.8128


class CalibrationError(ValueError):
    """A capture that must not be stored; the message is short enough for the screen."""


def steady_reading(samples: Sequence[float], max_spread: float = STEADY_SPREAD_V) -> float:
    """Median of a capture; refused when the input moved while it was read."""
    values = np.asarray(samples, dtype=np.float64)
    if values.size == 0:
        raise CalibrationError("no readings")
    if not np.all(np.isfinite(values)):
        raise CalibrationError("bad readings")
    if float(values.max() - values.min()) > max_spread:
        raise CalibrationError("input not steady")
    return float(np.median(values))


class PitchCalibration:
    """Measured volts -> semitones above 0 V, from the 1 V and 3 V readings."""

    def __init__(self, cv: int, semitones_per_volt: float, reading_at_1v: float):
        self.cv = cv
        self.semitones_per_volt = semitones_per_volt
        self.reading_at_1v = reading_at_1v

    @classmethod
    def from_readings(cls, cv: int, reading_1v: float, reading_3v: float) -> "PitchCalibration":
        if not (math.isfinite(reading_1v) and math.isfinite(reading_3v)):
            raise CalibrationError("bad readings")
        span = reading_3v - reading_1v
        if not PITCH_SPAN_MIN_V <= span <= PITCH_SPAN_MAX_V:
            raise CalibrationError(f"3V-1V read {span:.2f} V, expected about 2 V")
        if abs(reading_1v - 1.0) > PITCH_ANCHOR_TOLERANCE_V:
            raise CalibrationError(f"1V read {reading_1v:.2f} V")
        return cls(cv, 24.0 / span, reading_1v)

    def semitones(self, measured_v: float) -> float:
        """Semitones above 0 V for a measured input voltage."""
        return 12.0 + (measured_v - self.reading_at_1v) * self.semitones_per_volt

    def volts(self, measured_v: float) -> float:
        """The true voltage that was patched."""
        return self.semitones(measured_v) / 12.0

    def to_f0(self, measured_v: float, base_hz: float = DEFAULT_BASE_HZ) -> float:
        return base_hz * 2.0 ** (self.semitones(measured_v) / 12.0)

    def to_state(self) -> Dict[str, Any]:
        return {"cv": self.cv, "semitones_per_volt": self.semitones_per_volt,
                "reading_at_1v": self.reading_at_1v}

    @classmethod
    def from_state(cls, state: Optional[Dict[str, Any]]) -> Optional["PitchCalibration"]:
        if not state:
            return None
        return cls(int(state["cv"]), float(state["semitones_per_volt"]),
                   float(state["reading_at_1v"]))

    def __repr__(self) -> str:
        return (f"PitchCalibration(cv={self.cv}, {self.semitones_per_volt:.4f} st/V, "
                f"1V reads {self.reading_at_1v:.4f})")


class CVCalibration:
    """Per-CV correction of panel volts: (volts + offset) * scale."""

    def __init__(self, offsets: Optional[Union[Sequence[float], np.ndarray]] = None,
                 scales: Optional[Union[Sequence[float], np.ndarray]] = None,
                 pitch: Optional[PitchCalibration] = None):
        self.offsets = np.array(offsets if offsets is not None else [0.0] * CV_COUNT,
                                dtype=np.float64)
        self.scales = np.array(scales if scales is not None else [1.0] * CV_COUNT,
                               dtype=np.float64)
        if self.offsets.shape != (CV_COUNT,) or self.scales.shape != (CV_COUNT,):
            raise ValueError(f"calibration needs {CV_COUNT} offsets and scales")
        self.pitch = pitch

    def apply(self, volts: np.ndarray) -> np.ndarray:
        """Correct all four CVs at once (array of 4 panel volts)."""
        return (np.asarray(volts, dtype=np.float64) + self.offsets) * self.scales

    def apply_one(self, cv: int, volts: float) -> float:
        return (volts + float(self.offsets[cv])) * float(self.scales[cv])

    def with_offsets(self, offsets: Union[Sequence[float], np.ndarray]) -> "CVCalibration":
        return CVCalibration(offsets, self.scales, self.pitch)

    def with_pitch(self, pitch: Optional[PitchCalibration]) -> "CVCalibration":
        return CVCalibration(self.offsets, self.scales, pitch)

    def to_state(self) -> Dict[str, Any]:
        return {"cv_offset_v": [float(v) for v in self.offsets],
                "cv_scale": [float(v) for v in self.scales],
                "pitch": self.pitch.to_state() if self.pitch else None}

    @classmethod
    def from_state(cls, state: Dict[str, Any]) -> "CVCalibration":
        return cls(state["cv_offset_v"], state["cv_scale"],
                   PitchCalibration.from_state(state.get("pitch")))


def offsets_from_idle(captures: Sequence[Sequence[float]]) -> List[float]:
    """Offsets that bring each input's reading with nothing patched to 0 V.

    `captures[i]` holds readings of CV i+1 taken with nothing patched.
    """
    if len(captures) != CV_COUNT:
        raise CalibrationError(f"need readings of all {CV_COUNT} CVs")
    offsets = []
    for index, samples in enumerate(captures):
        reading = steady_reading(samples)
        if abs(reading) > OFFSET_MAX_V:
            raise CalibrationError(f"CV{index + 1} reads {reading:.2f} V: unpatch it")
        offsets.append(-reading)
    return offsets


class PitchWizard:
    """The 1 V/oct steps of the calibration wizard: patch 1 V, then 3 V, then done.

    The menu shows `prompt`, calls `capture(samples)` on each press, and stores
    `result` once `done`. A refused capture leaves the wizard at the same step with
    `error` set, so the player can patch again and retry.
    """

    STEP_1V, STEP_3V, STEP_DONE = "patch_1v", "patch_3v", "done"
    PROMPTS = {STEP_1V: "Patch 1.000 V, press", STEP_3V: "Patch 3.000 V, press",
               STEP_DONE: "Calibrated"}

    def __init__(self, cv: int):
        self.cv = cv
        self.step = self.STEP_1V
        self.error = ""
        self.result: Optional[PitchCalibration] = None
        self._reading_1v = 0.0

    @property
    def prompt(self) -> str:
        return self.PROMPTS[self.step]

    @property
    def done(self) -> bool:
        return self.step == self.STEP_DONE

    def capture(self, samples: Sequence[float]) -> None:
        self.error = ""
        try:
            reading = steady_reading(samples)
            if self.step == self.STEP_1V:
                if abs(reading - 1.0) > PITCH_ANCHOR_TOLERANCE_V:
                    raise CalibrationError(f"read {reading:.2f} V, not 1 V")
                self._reading_1v = reading
                self.step = self.STEP_3V
            elif self.step == self.STEP_3V:
                self.result = PitchCalibration.from_readings(self.cv, self._reading_1v, reading)
                self.step = self.STEP_DONE
        except CalibrationError as exc:
            self.error = str(exc)
