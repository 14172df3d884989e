"""Control mapping at the latent frame rate: panel volts and gate 2 -> what the voice plays.

Where it plugs in: the voice thread calls `ControlMapper.step()` once per latent frame
with the newest calibrated-or-raw panel volts the scheduler polled (four CVs) and the
gate 2 state since the previous frame; it feeds `ControlSnapshot.latent0` to the
prior (latent dimension 0) and `ControlSnapshot.attributes` (each in its attribute's
own range and unit) to the decoder. Pure logic: no I/O, deterministic with a seed.

Musical model (after the research module):
- CV1 drives latent dimension 0 (-5..+5 V -> -latent_span..+latent_span);
- the macro gives every attribute a home position; gate 2 moves all homes together
  with a glide, to a random point, to the next stored snapshot, or to where CV4 points
  (track and hold: while gate 2 is high the homes follow CV4);
- CV2..CV4 each slide one assigned attribute around its home (bipolar: 0 V leaves it
  at home, +-5 V moves it by half its range), clipped to the player's range;
- with a prior, in the default CV mode "slide", the home is what the prior generates:
  the macro and the CVs move each attribute away from the prior's curve (rms by a
  gain in dB, the others by a share of their range; f0 only by a CV, which transposes
  by 1 V/oct), so an unpatched module plays the prior's phrases with their dynamics;
  in mode "hold" (and always without a prior) an assigned CV holds its attribute at
  home + CV, and the prior follows it;
- in pitch mode f0 reads 1 V/oct through the pitch calibration, or, not calibrated
  yet, nominally (12 semitones per volt) on the CV assigned to f0;
- every control is smoothed by a one-pole filter at the frame rate (f0 in semitones).
"""
import copy
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from neurorave.firmware.calibration import (
    CV_COUNT,
    DEFAULT_BASE_HZ,
    CVCalibration,
    PitchCalibration,
)

CV_SPAN_V = 5.0  # a CV's full swing on each side of 0 V (Eurorack +-5 V)
DEFAULT_CV_RANGES = ((-CV_SPAN_V, CV_SPAN_V),) * 4  # the board file's min/max per CV
MACRO_MODES = ("random", "snapshot", "follow_cv4")
CV_MODES = ("slide", "hold")
DEFAULT_CV_MODE = CV_MODES[0]
# What gate 1 starts in a bundle with a prior: the prior's phrase, played as it comes;
# one hit (after the attack the level only falls until the next gate: a drum's trigger);
# or one note (a hit held while gate 1 is high and released when it falls: a keyboard's
# or a sequencer's gate). Unset: the bundle's own (model.json "prior": {"gate": ...}),
# else a phrase.
GATE_MODES = ("phrase", "hit", "note")
# In slide mode the whole swing of a CV (+-5 V) moves rms by +-RMS_SLIDE_DB / 2: loudness
# is heard in dB, and a gain keeps the prior's envelope (an offset would fill its tails).
RMS_SLIDE_DB = 48.0
ATTRIBUTE_CVS = ("cv2", "cv3", "cv4")
F0_NAMES = ("f0", "pitch")


def one_pole_coefficient(time_constant_s: float, frame_rate_hz: float) -> float:
    """The per-frame step of a one-pole low-pass with this time constant (1 = no smoothing)."""
    if time_constant_s <= 0:
        return 1.0
    return 1.0 - math.exp(-1.0 / (time_constant_s * frame_rate_hz))


class AttributeRange:
    """A model attribute (name, range, unit); `Bundle.attributes` items fit as they are."""

    def __init__(self, name: str, minimum: float, maximum: float, unit: str = ""):
        if not maximum > minimum:
            raise ValueError(f"attribute {name}: empty range {minimum}..{maximum}")
        self.name = name
        self.min = float(minimum)
        self.max = float(maximum)
        self.unit = unit

    @classmethod
    def of(cls, attribute: Any) -> "AttributeRange":
        return cls(attribute.name, attribute.min, attribute.max, getattr(attribute, "unit", ""))


class ControlSettings:
    """The player's control choices (a view of the settings file's data)."""

    def __init__(self, cv_assign: Optional[Dict[str, Optional[int]]] = None,
                 attribute_ranges: Optional[Dict[str, Sequence[float]]] = None,
                 macro_mode: str = "random", macro_glide_s: float = 0.25,
                 snapshots: Optional[List[Sequence[float]]] = None,
                 pitch_mode: bool = False, base_hz: float = DEFAULT_BASE_HZ,
                 latent_span: float = 2.0, smoothing_s: float = 0.03,
                 cv_mode: str = DEFAULT_CV_MODE, gate_mode: Optional[str] = None):
        if macro_mode not in MACRO_MODES:
            raise ValueError(f"macro mode must be one of {', '.join(MACRO_MODES)}")
        if cv_mode not in CV_MODES:
            raise ValueError(f"CV mode must be one of {', '.join(CV_MODES)}")
        if gate_mode is not None and gate_mode not in GATE_MODES:
            raise ValueError(f"gate mode must be one of {', '.join(GATE_MODES)}")
        self.cv_mode = cv_mode
        self.gate_mode = gate_mode  # None: the bundle's
        self.cv_assign: Dict[str, Optional[int]] = dict(
            cv_assign if cv_assign is not None else {"cv2": 0, "cv3": 1, "cv4": 2})
        self.attribute_ranges = {k: (float(v[0]), float(v[1]))
                                 for k, v in (attribute_ranges or {}).items()}
        self.macro_mode = macro_mode
        self.macro_glide_s = float(macro_glide_s)
        self.snapshots = [list(map(float, s)) for s in (snapshots or [])]
        self.pitch_mode = bool(pitch_mode)
        self.base_hz = float(base_hz)
        self.latent_span = float(latent_span)
        self.smoothing_s = float(smoothing_s)

    @classmethod
    def from_settings(cls, data: Dict[str, Any]) -> "ControlSettings":
        return cls(cv_assign=data.get("cv_assign"), attribute_ranges=data.get("attribute_ranges"),
                   macro_mode=data.get("macro_mode", "random"),
                   macro_glide_s=data.get("macro_glide_s", 0.25),
                   snapshots=data.get("snapshots"), pitch_mode=data.get("pitch_mode", False),
                   cv_mode=data.get("cv_mode", DEFAULT_CV_MODE),
                   gate_mode=data.get("gate_mode"))


class ControlSnapshot:
    """What the voice plays for one latent frame. Treated as immutable once made."""

    __slots__ = ("frame", "latent0", "attributes", "f0_hz", "macro", "slide")

    def __init__(self, frame: int, latent0: float, attributes: np.ndarray,
                 f0_hz: Optional[float], macro: np.ndarray,
                 slide: Optional[np.ndarray] = None):
        self.frame = frame
        self.latent0 = latent0
        self.attributes = attributes  # one value per model attribute, in its unit
        self.f0_hz = f0_hz  # set in pitch mode when the model has an f0 attribute
        self.macro = macro  # macro home per attribute, fraction 0..1 of the player's range
        # how far macro and CVs move each attribute, -0.5..0.5 of the player's range
        self.slide = slide if slide is not None else np.zeros(len(attributes))


class ControlMapper:
    def __init__(self, attributes: Sequence[Any], frame_rate_hz: float,
                 settings: Optional[ControlSettings] = None,
                 calibration: Optional[CVCalibration] = None, seed: int = 0,
                 generated: bool = False,
                 cv_ranges: Sequence[Tuple[float, float]] = DEFAULT_CV_RANGES):
        """`generated`: a prior generates the attributes the player does not hold.
        `cv_ranges`: each CV's (min, max) volts from the board file. A CV slides around
        0 V with its full swing at the larger of |min| and |max| (so a 0-10 V input
        slides up only, all the way at 10 V); CV4 following the macro spans min..max."""
        if frame_rate_hz <= 0:
            raise ValueError("frame rate must be positive")
        if len(cv_ranges) != CV_COUNT or not all(hi > lo for lo, hi in cv_ranges):
            raise ValueError(f"need {CV_COUNT} CV ranges, each with max above min")
        self.generated = bool(generated)
        self._cv_low = np.array([float(lo) for lo, _ in cv_ranges])
        self._cv_high = np.array([float(hi) for _, hi in cv_ranges])
        self._cv_span = np.maximum(np.abs(self._cv_low), np.abs(self._cv_high))
        self.attributes = [a if isinstance(a, AttributeRange) else AttributeRange.of(a)
                           for a in attributes]
        self.frame_rate_hz = float(frame_rate_hz)
        self.calibration = calibration or CVCalibration()
        self._seed = seed
        self.configure(settings or ControlSettings())
        self.reset()

    # ---- configuration -------------------------------------------------------------
    def configure(self, settings: ControlSettings) -> None:
        """Take new settings (menu change); the current positions carry on smoothly."""
        self.settings = settings
        n = len(self.attributes)
        self._model_min = np.array([a.min for a in self.attributes], dtype=np.float64)
        self._model_span = np.array([a.max - a.min for a in self.attributes], dtype=np.float64)
        lows, highs = np.zeros(n), np.ones(n)
        for i, a in enumerate(self.attributes):
            lo, hi = settings.attribute_ranges.get(a.name, (0.0, 1.0))
            lo, hi = sorted((min(max(lo, 0.0), 1.0), min(max(hi, 0.0), 1.0)))
            lows[i], highs[i] = lo, hi
        self._range_lo, self._range_hi = lows, highs
        self._alpha = one_pole_coefficient(settings.smoothing_s, self.frame_rate_hz)
        self._glide_frames = max(1, int(round(settings.macro_glide_s * self.frame_rate_hz)))
        self._cv_of_attribute: List[Optional[int]] = [None] * n
        for cv_name in ATTRIBUTE_CVS:
            index = settings.cv_assign.get(cv_name)
            if index is not None and 0 <= index < n:
                self._cv_of_attribute[index] = int(cv_name[2:]) - 1
        self._pitch_index = self._find_f0()   # the model's f0, played or not
        self._f0_index = self._pitch_index if settings.pitch_mode else None
        self._rms_index = next((i for i, a in enumerate(self.attributes)
                                if a.name.lower() == "rms"), None)
        self.slides = self.generated and settings.cv_mode == "slide"

    def _find_f0(self) -> Optional[int]:
        for i, a in enumerate(self.attributes):
            if a.name.lower() in F0_NAMES or (a.unit.lower() == "hz" and "f0" in a.name.lower()):
                return i
        return None

    def reset(self) -> None:
        """Back to the start: macro homes at the middle, smoothing settled, seed re-applied."""
        n = len(self.attributes)
        self._rng = np.random.default_rng(self._seed)
        self._frame = 0
        self._macro = np.full(n, 0.5)
        self._glide_from = self._macro.copy()
        self._glide_to = self._macro.copy()
        self._glide_left = 0
        self._snapshot_index = -1
        self._last_volts = np.zeros(CV_COUNT)
        self._smooth_latent: Optional[float] = None
        self._smooth_position: Optional[np.ndarray] = None
        self._smooth_semitones: Optional[float] = None

    # ---- per frame -----------------------------------------------------------------
    def step(self, volts: Sequence[float], gate2_rise: bool = False,
             gate2_high: bool = False) -> ControlSnapshot:
        """One latent frame: raw panel volts of CV1..CV4 and gate 2 since the last frame."""
        raw = np.asarray(volts, dtype=np.float64)
        if raw.shape != (CV_COUNT,):
            raise ValueError(f"need {CV_COUNT} CV readings")
        # A reading that is not a number holds that CV's last good value.
        raw = np.where(np.isfinite(raw), raw, self._last_volts)
        self._last_volts = raw
        cv = self.calibration.apply(raw)

        self._step_macro(cv, gate2_rise, gate2_high)

        # Each assigned CV slides its attribute around the macro home.
        position = self._macro.copy()
        if self.slides and self._pitch_index is not None:
            position[self._pitch_index] = 0.5  # the macro moves timbre, not the prior's tune
        for index, cv_index in enumerate(self._cv_of_attribute):
            if cv_index is not None and index != self._f0_index:
                swing = cv[cv_index] / self._cv_span[cv_index]
                position[index] += 0.5 * _clamp(float(swing), -1.0, 1.0)
        position = np.clip(position, 0.0, 1.0)

        latent = self.settings.latent_span * _clamp(float(cv[0] / self._cv_span[0]), -1.0, 1.0)
        a = self._alpha
        if self._smooth_position is None or self._smooth_latent is None:
            self._smooth_position, self._smooth_latent = position, latent
        else:
            self._smooth_position = self._smooth_position + a * (position - self._smooth_position)
            self._smooth_latent = self._smooth_latent + a * (latent - self._smooth_latent)

        lo, hi = self._range_lo, self._range_hi
        fraction = lo + self._smooth_position * (hi - lo)
        values = self._model_min + fraction * self._model_span

        f0_hz = self._pitch(raw, cv, a)
        if f0_hz is not None and self._f0_index is not None:
            values[self._f0_index] = f0_hz

        self._frame += 1
        return ControlSnapshot(self._frame - 1, self._smooth_latent, values, f0_hz,
                               self._macro.copy(), self._smooth_position - 0.5)

    def _step_macro(self, cv: np.ndarray, rise: bool, high: bool) -> None:
        mode = self.settings.macro_mode
        target: Optional[np.ndarray] = None
        if mode == "follow_cv4" and (rise or high):
            bottom, top = self._cv_low[3], self._cv_high[3]
            point = _clamp(float((cv[3] - bottom) / (top - bottom)), 0.0, 1.0)
            target = np.full(len(self.attributes), point)
        elif rise and mode == "random":
            target = self._rng.uniform(0.0, 1.0, len(self.attributes))
        elif rise and mode == "snapshot" and self.settings.snapshots:
            self._snapshot_index = (self._snapshot_index + 1) % len(self.settings.snapshots)
            target = self._snapshot_point(self.settings.snapshots[self._snapshot_index])
        if target is not None and not np.array_equal(target, self._glide_to):
            self._glide_from = self._macro.copy()
            self._glide_to = target
            self._glide_left = self._glide_frames
        if self._glide_left > 0:
            self._glide_left -= 1
            t = 1.0 - self._glide_left / self._glide_frames
            self._macro = self._glide_from + t * (self._glide_to - self._glide_from)

    def _snapshot_point(self, stored: Sequence[float]) -> np.ndarray:
        point = np.full(len(self.attributes), 0.5)
        count = min(len(stored), len(point))
        point[:count] = np.clip(np.asarray(stored[:count], dtype=np.float64), 0.0, 1.0)
        return point

    def _pitch_source(self) -> Optional[PitchCalibration]:
        """The pitch calibration, else a nominal 1 V/oct on the CV assigned to f0."""
        if self._f0_index is None:
            return None
        if self.calibration.pitch is not None:
            return self.calibration.pitch
        cv = self._cv_of_attribute[self._f0_index]
        return PitchCalibration(cv, 12.0, 1.0) if cv is not None else None

    def _pitch(self, raw: np.ndarray, cv: np.ndarray, a: float) -> Optional[float]:
        pitch = self._pitch_source()
        if pitch is None or self._f0_index is None:
            return None
        # A measured calibration maps raw readings; the nominal one reads the CV with its
        # stored offset applied.
        reading = raw if self.calibration.pitch is not None else cv
        semitones = pitch.semitones(float(reading[pitch.cv]))
        if self._smooth_semitones is None:
            self._smooth_semitones = semitones
        else:
            self._smooth_semitones += a * (semitones - self._smooth_semitones)
        attribute = self.attributes[self._f0_index]
        f0 = self.settings.base_hz * 2.0 ** (self._smooth_semitones / 12.0)
        return float(min(max(f0, attribute.min), attribute.max))

    # ---- going back a frame (the voice re-renders a queued frame on a gate) ----------
    # Only the per-frame state (what `reset` sets): a state saved before a menu change
    # must not bring back the settings it was made with.
    _PER_FRAME = ("_rng", "_frame", "_macro", "_glide_from", "_glide_to", "_glide_left",
                  "_snapshot_index", "_last_volts", "_smooth_latent", "_smooth_position",
                  "_smooth_semitones")

    def save_state(self) -> Dict[str, Any]:
        return {k: copy.deepcopy(getattr(self, k)) for k in self._PER_FRAME}

    def load_state(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(copy.deepcopy(state))

    # ---- menu helpers --------------------------------------------------------------
    def pinned_attributes(self) -> List[int]:
        """Attributes the player holds (a CV is assigned in hold mode, or f0 played by
        1 V/oct); a prior generates the others."""
        held = [] if self.slides else \
            [i for i, cv in enumerate(self._cv_of_attribute) if cv is not None]
        f0 = self._f0_index
        if f0 is not None and self._pitch_source() is not None and f0 not in held:
            held.append(f0)
        return sorted(held)

    def slide(self, generated: np.ndarray, snapshot: ControlSnapshot) -> np.ndarray:
        """Slide mode: the prior's attribute values moved by the macro and the CVs, within
        the player's range; the held ones (`pinned_attributes`) as the snapshot has them."""
        if not self.slides:
            return generated
        out = np.asarray(generated, dtype=np.float64).copy()
        held = self.pinned_attributes()
        share = snapshot.slide * (self._range_hi - self._range_lo) * self._model_span
        for i in range(len(out)):
            if i in held:
                out[i] = snapshot.attributes[i]
            elif i == self._rms_index:
                out[i] *= 10.0 ** (snapshot.slide[i] * RMS_SLIDE_DB / 20.0)
            elif i == self._pitch_index:
                # A CV on f0 transposes the prior's tune by 1 V/oct (slide 0.5: full swing).
                cv_index = self._cv_of_attribute[i]
                span = self._cv_span[cv_index] if cv_index is not None else CV_SPAN_V
                out[i] *= 2.0 ** (snapshot.slide[i] * 2 * span)
            else:
                out[i] += share[i]
        low = self._model_min + self._range_lo * self._model_span
        high = self._model_min + self._range_hi * self._model_span
        free = [i for i in range(len(out)) if i not in held]
        out[free] = np.clip(out[free], low[free], high[free])
        return out.astype(np.asarray(generated).dtype)

    def store_snapshot(self) -> List[float]:
        """The current macro point, to append to the settings' snapshots."""
        return [float(v) for v in self._macro]

    @property
    def frame(self) -> int:
        return self._frame

    def pitch_cv(self) -> Optional[int]:
        pitch = self._pitch_source()
        return pitch.cv if pitch is not None else None


def _clamp(value: float, low: float, high: float) -> float:
    """A float held in [low, high]: np.clip costs 7 us on one number, this 0.3 (the voice
    steps the controls 187 times a second at 256-sample frames)."""
    return low if value < low else high if value > high else value


def attribute_bars(values: Union[Sequence[float], np.ndarray],
                   attributes: Sequence[Any]) -> List[Tuple[str, float]]:
    """(name, fraction 0..1 of the model's range) per attribute value, for the
    performance page (`attributes`: anything with name, min and max)."""
    bars = []
    for value, a in zip(values, attributes):
        span = max(a.max - a.min, 1e-12)
        bars.append((a.name, _clamp(float((value - a.min) / span), 0.0, 1.0)))
    return bars
