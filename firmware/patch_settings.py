"""A patch's `[settings]` table: what the menu would set, so that a patch renders offline
(`neurorave render`) and plays on the virtual board as it would on a set-up module.

The keys are the settings file's (`state_files.default_settings`), with attributes by
name instead of index, and the values pass the same validators, so a patch never holds
a value the daemon would refuse:

    [settings]
    model = "gm-notes"            # a bundle's folder name in the models folder
    pitch_mode = true             # 1 V/oct on f0 (models with f0)
    cv_mode = "hold"              # slide, hold
    gate_mode = "hit"             # phrase, hit, note (with a prior; absent: the model's own)
    macro_mode = "snapshot"       # random, snapshot, follow_cv4 (gate 2)
    macro_glide_s = 0.5
    prior_temperature = 1.0
    output_level = 0.8
    calibration = "ideal"         # ideal, module, or a [settings.calibration] table
    [settings.cv_assign]          # cv2..cv4: an attribute name, or "none"
    cv2 = "rms"
    [settings.attribute_ranges]   # the player's range, fractions of the model's
    centroid = [0.2, 0.9]
    [[settings.snapshots]]        # macro points for "snapshot": by name (others 0.5),
    centroid = 0.1                # or as the file has them, lists in attribute order
    [settings.calibration]        # explicit: ideal but where given
    pitch_cv = 4                  # the CV read at 1 V/oct (else the CV assigned to f0)
    semitones_per_volt = 12.0
    reading_at_1v = 1.0
    offsets = [0.0, 0.0, 0.0, 0.0]
    scales = [1.0, 1.0, 1.0, 1.0]

Calibration: "ideal" is a perfect input (no offsets, 12 semitones per volt); "module"
the calibration file in the state folder; without the key what was there stays (the
daemon's stored calibration; `render`: ideal). Errors name the key, as the rest of the
patch does ("p.toml: settings.cv_assign.cv3: ...").
"""
import math
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from neurorave.common.toml_reader import Table
from neurorave.firmware.calibration import (
    CV_COUNT,
    PITCH_ANCHOR_TOLERANCE_V,
    PITCH_SPAN_MAX_V,
    PITCH_SPAN_MIN_V,
    CVCalibration,
    PitchCalibration,
)
from neurorave.firmware.controls import ATTRIBUTE_CVS, CV_MODES, GATE_MODES, MACRO_MODES
from neurorave.firmware.menu import ModelEntry
from neurorave.firmware.state_files import (
    default_settings,
    repair_settings,
    validate_calibration,
    validate_settings,
)
from neurorave.hardware.errors import PatchError
from neurorave.hardware.patch import Patch

CALIBRATIONS = ("ideal", "module")
NO_ATTRIBUTE = "none"
# key -> TOML type; each value then passes the settings file's own rule
PLAIN_KEYS = (("model", str), ("pitch_mode", bool), ("cv_mode", str), ("macro_mode", str),
              ("macro_glide_s", float), ("prior_temperature", float),
              ("output_level", float), ("gate_mode", str))
CHOICES = {"cv_mode": CV_MODES, "macro_mode": MACRO_MODES, "gate_mode": GATE_MODES}
Snapshot = Union[List[float], Dict[str, float]]


class PatchSettings:
    """The table read and checked; attribute names are resolved against a model later."""

    def __init__(self, source: str, values: Dict[str, Any],
                 cv_assign: Dict[str, Optional[str]], ranges: Dict[str, List[float]],
                 snapshots: Optional[List[Snapshot]], calibration: Any):
        self.source = source
        self.values = values            # settings-file keys with their plain values
        self.cv_assign = cv_assign      # cv2..cv4 -> attribute name or None
        self.ranges = ranges            # attribute name -> [low, high]
        self.snapshots = snapshots      # None: the patch leaves them
        self.calibration = calibration  # None, "ideal", "module" or a dict (see above)

    @property
    def model(self) -> Optional[str]:
        return self.values.get("model")

    @property
    def names_attributes(self) -> bool:
        """Needs a model's attribute names to mean anything."""
        return bool(any(self.cv_assign.values()) or self.ranges or any(
            isinstance(s, dict) for s in self.snapshots or ()))

    def fail(self, key: str, message: str) -> PatchError:
        return PatchError(f"{self.source}: settings.{key}: {message}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


def _rule(t: Table, key: str, value: Any) -> None:
    """The settings file's own check of one value."""
    _, bad = repair_settings(dict(default_settings(), **{key: value}))
    if key in bad:
        raise t.fail(t.key(key), f"{value!r}: {bad[key]}")


def read(patch: Patch) -> PatchSettings:
    """The patch's [settings], checked as far as no model is needed."""
    t = Table(patch.settings, "settings", patch.source, PatchError)
    values: Dict[str, Any] = {}
    for key, kind in PLAIN_KEYS:
        if t.has(key):
            values[key] = t.take(key, kind, choices=CHOICES.get(key))
            _rule(t, key, values[key])
    cv_assign: Dict[str, Optional[str]] = {}
    assign = t.table("cv_assign", required=False)
    if assign is not None:
        if "cv1" in assign.data:
            raise assign.fail(assign.key("cv1"), "CV1 always moves latent 0; assign cv2..cv4")
        for cv in ATTRIBUTE_CVS:
            if assign.has(cv):
                name = assign.take(cv, str)
                cv_assign[cv] = None if name == NO_ATTRIBUTE else name
        assign.finish()
    ranges: Dict[str, List[float]] = {}
    table = t.table("attribute_ranges", required=False)
    if table is not None:
        for name in list(table.data):
            pair = table.take(name, list)
            if len(pair) != 2 or not all(_is_number(v) and 0 <= v <= 1 for v in pair) \
                    or pair[0] > pair[1]:
                raise table.fail(table.key(name), f"{pair!r}: must be [low, high], "
                                                  f"fractions 0..1 of the model's range")
            ranges[name] = [float(v) for v in pair]
        table.finish()
    snapshots = _snapshots(t) if t.has("snapshots") else None
    calibration = _calibration(t) if t.has("calibration") else None
    t.finish()
    return PatchSettings(patch.source, values, cv_assign, ranges, snapshots, calibration)


def _snapshots(t: Table) -> List[Snapshot]:
    items = t.take("snapshots", list)
    found: List[Snapshot] = []
    for i, item in enumerate(items):
        key = f"{t.key('snapshots')}[{i}]"
        values = list(item.values()) if isinstance(item, dict) else item
        if not isinstance(item, (list, dict)) or not all(
                _is_number(v) and 0 <= v <= 1 for v in values):
            raise t.fail(key, f"{item!r}: a macro point is fractions 0..1, by attribute "
                              f"name ([[settings.snapshots]]) or in attribute order")
        found.append({k: float(v) for k, v in item.items()} if isinstance(item, dict)
                     else [float(v) for v in item])
    return found


def _calibration(t: Table) -> Any:
    if isinstance(t.data["calibration"], str):
        return t.take("calibration", str, choices=CALIBRATIONS)
    c = t.table("calibration")
    assert c is not None
    pitch_cv = c.take("pitch_cv", int, None, minimum=1, maximum=CV_COUNT)
    low, high = 24.0 / PITCH_SPAN_MAX_V, 24.0 / PITCH_SPAN_MIN_V
    per_volt = c.take("semitones_per_volt", float, 12.0, minimum=low, maximum=high)
    at_1v = c.take("reading_at_1v", float, 1.0, minimum=1.0 - PITCH_ANCHOR_TOLERANCE_V,
                   maximum=1.0 + PITCH_ANCHOR_TOLERANCE_V)
    if pitch_cv is None and (c.has("semitones_per_volt") or c.has("reading_at_1v")):
        raise c.fail(c.key("pitch_cv"), "missing: which CV reads 1 V/oct (1..4)")
    lists = {}
    for key, default in (("offsets", 0.0), ("scales", 1.0)):
        values = c.take(key, list, [default] * CV_COUNT)
        if len(values) != CV_COUNT or not all(_is_number(v) for v in values) \
                or (key == "scales" and 0 in values):
            raise c.fail(c.key(key), f"{values!r}: must be {CV_COUNT} numbers"
                                     + (", none zero" if key == "scales" else ""))
        lists[key] = [float(v) for v in values]
    c.finish()
    return {"pitch_cv": pitch_cv, "semitones_per_volt": per_volt, "reading_at_1v": at_1v,
            **lists}


def settings_for(patch: Patch, base: Dict[str, Any], attributes: Sequence[str] = (),
                 model: str = "the model") -> Dict[str, Any]:
    """`base` (the settings file's data) with the patch's settings over it, attribute
    names resolved against `attributes` (those of `model`, which plays). A new dict."""
    read_ = read(patch)
    names = list(attributes)

    def index_of(key: str, name: str) -> int:
        if name not in names:
            known = ", ".join(names) or "none"
            raise read_.fail(key, f"{name!r} is not an attribute of {model} ({known})")
        return names.index(name)

    settings = dict(base, **read_.values)
    if read_.cv_assign:
        assign = dict(settings.get("cv_assign") or {})
        for cv, name in read_.cv_assign.items():
            assign[cv] = None if name is None else index_of(f"cv_assign.{cv}", name)
        settings["cv_assign"] = assign
    if read_.ranges:
        ranges = dict(settings.get("attribute_ranges") or {})
        for name, pair in read_.ranges.items():
            index_of(f"attribute_ranges.{name}", name)
            ranges[name] = pair
        settings["attribute_ranges"] = ranges
    if read_.snapshots is not None:
        points = []
        for i, item in enumerate(read_.snapshots):
            if isinstance(item, dict):
                point = [0.5] * len(names)
                for name, value in item.items():
                    point[index_of(f"snapshots[{i}].{name}", name)] = value
                points.append(point)
            else:
                points.append(list(item))
        settings["snapshots"] = points
    validate_settings(settings)  # the checks above cover each rule: a failure is a bug
    return settings


def calibration_for(patch: Patch, current: CVCalibration,
                    stored: Callable[[], CVCalibration]) -> CVCalibration:
    """The calibration the patch asks for: `current` where it names none, `stored()` (the
    module's file) for "module", a perfect input for "ideal", else the table's."""
    choice = read(patch).calibration
    if choice is None:
        return current
    if choice == "module":
        return stored()
    if choice == "ideal":
        return CVCalibration()
    pitch = None
    if choice["pitch_cv"] is not None:
        pitch = PitchCalibration(choice["pitch_cv"] - 1, choice["semitones_per_volt"],
                                 choice["reading_at_1v"])
    calibration = CVCalibration(choice["offsets"], choice["scales"], pitch)
    validate_calibration(calibration.to_state())  # as the file would have to hold it
    return calibration


def overrides(patch: Patch) -> bool:
    """The patch sets what the menu would: a run that plays it saves no settings."""
    return bool(patch.settings)


def for_run(patch: Patch, settings: Dict[str, Any], calibration: CVCalibration,
            models: Sequence[ModelEntry], default_model: Optional[str] = None,
            folder: str = "the models folder") -> Tuple[Dict[str, Any], CVCalibration]:
    """The daemon's settings and calibration for a run that plays `patch` (the virtual
    board): the loaded ones with the patch's over them. Names resolve against the model
    that will play: the patch's (which must be in `models`), else the settings', else
    `default_model`, else the first playable one."""
    wanted = read(patch)
    playable = [m for m in models if not m.error]

    def named(name: Optional[str]) -> Optional[ModelEntry]:
        return next((m for m in playable if _folder_name(m) == name), None) if name else None

    entry = named(wanted.model)
    if wanted.model and entry is None:
        known = ", ".join(_folder_name(m) for m in playable) or "none playable"
        raise wanted.fail("model", f"{wanted.model!r} is not in {folder} ({known})")
    entry = entry or named(settings.get("model")) or named(default_model) or \
        (playable[0] if playable else None)
    if entry is None and wanted.names_attributes:
        raise wanted.fail("cv_assign", f"names attributes, but {folder} has no playable "
                                       f"model to find them in")
    attributes = entry.attributes if entry is not None else ()
    name = _folder_name(entry) if entry is not None else "the model"
    return (settings_for(patch, settings, attributes, name),
            calibration_for(patch, calibration, lambda: calibration))


def _folder_name(entry: ModelEntry) -> str:
    return entry.folder.rstrip("/").replace("\\", "/").rsplit("/", 1)[-1]
