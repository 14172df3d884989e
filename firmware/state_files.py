"""Settings and calibration files in the state directory (DESIGN.md "Settings and calibration").

Two files, kept apart as hardware synthesizers do: `settings.json` (what the player
chose: model, CV assignments, macro mode...) and `calibration.json` (per-CV offset and
scale). Each is a JSON object `{"format": ..., "version": N, "data": {...}}`.

A module's power is cut without warning every time the case is switched off, so a
save is atomic: write a temporary file in the same folder, fsync it, keep the current
file as `<name>.bak`, rename the temporary file over the name, fsync the folder. At
every instant the folder holds a complete current file or a complete `.bak` (or both).

Loading never loses what a player set: a file that parses but holds a few bad values
(a hand edit, an older firmware's mistake) keeps every good value and resets only the
bad ones to their defaults, naming them. A file that cannot be read at all (torn, not
JSON, another format, a newer version) is passed over for `.bak`, then the defaults.
Either way the file is left as it is until the next save, which first keeps it as
`<name>.bad-<YYYYmmdd-HHMMSS>` (a user's file is never destroyed, only set aside).

Where it plugs in: the scheduler loads both at start (`load()`), prints
`LoadResult.report` and shows `LoadResult.message` when `damaged`, and calls `save()`
only when something changed.
"""
import contextlib
import json
import math
import os
import tempfile
import time
from typing import Any, Callable, Dict, Optional, Tuple

from neurorave.firmware.calibration import CV_COUNT
from neurorave.firmware.controls import CV_MODES, DEFAULT_CV_MODE, GATE_MODES, MACRO_MODES

STATE_DIR_ENV = "NEURORAVE_STATE_DIR"
SYSTEM_STATE_DIR = "/var/lib/neurorave"
SETTINGS_FILE = "settings.json"
CALIBRATION_FILE = "calibration.json"
BACKUP_SUFFIX = ".bak"
ASIDE_SUFFIX = ".bad-"  # + a local time stamp: a file that could not be read in full

# Where loaded data came from.
SOURCE_CURRENT = "current"
SOURCE_BACKUP = "backup"
SOURCE_DEFAULTS = "defaults"


def default_state_dir() -> str:
    """`$NEURORAVE_STATE_DIR`, else /var/lib/neurorave when writable, else ~/.local/state."""
    override = os.environ.get(STATE_DIR_ENV)
    if override:
        return override
    if os.path.isdir(SYSTEM_STATE_DIR) and os.access(SYSTEM_STATE_DIR, os.W_OK | os.X_OK):
        return SYSTEM_STATE_DIR
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"),
                                                             ".local", "state")
    return os.path.join(base, "neurorave")


class StateFileError(Exception):
    """A state file that cannot be used (unreadable, not JSON, wrong format or version)."""


class LoadResult:
    """What `StateFile.load()` found: the data, where it came from, and why."""

    def __init__(self, data: Dict[str, Any], source: str, problems: Dict[str, str],
                 dropped: Optional[Dict[str, str]] = None, kind: str = "",
                 used_path: str = ""):
        self.data = data
        self.source = source  # SOURCE_CURRENT, SOURCE_BACKUP or SOURCE_DEFAULTS
        self.problems = problems  # file path -> why that file could not be used at all
        self.dropped = dropped or {}  # key -> why its value was reset to the default
        self.kind = kind  # "settings" or "calibration": names the file on the screen
        self.used_path = used_path  # the file the data came from ("" for the defaults)

    @property
    def fell_back(self) -> bool:
        return self.source != SOURCE_CURRENT

    @property
    def damaged(self) -> bool:
        """Something the player should hear about (a first start is no damage)."""
        return bool(self.problems or self.dropped)

    @property
    def message(self) -> str:
        """One short line for the OLED (21 characters) naming the file; empty when the
        current file was read in full."""
        if self.source == SOURCE_BACKUP:
            return f"{self.kind} from .bak"
        if self.source == SOURCE_DEFAULTS:
            return f"{self.kind}: defaults" if self.problems else f"{self.kind}: first start"
        if self.dropped:
            return f"{self.kind}: {len(self.dropped)} reset"
        return ""

    @property
    def report(self) -> str:
        """One line for stderr and the stats: each file that failed and why, and what
        was used instead; empty when there is nothing to say."""
        parts = [f"{path}: {why}" for path, why in self.problems.items()]
        if self.dropped:
            parts.append(f"{self.used_path}: {'; '.join(self.dropped.values())} "
                         f"(reset to the default, every other value kept)")
        if not parts:
            return ""
        if self.problems:
            parts.append(f"using {self.used_path}" if self.used_path else "using defaults")
        return "; ".join(parts)

    def __repr__(self) -> str:
        return (f"LoadResult(source={self.source!r}, problems={self.problems!r}, "
                f"dropped={self.dropped!r})")


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # some filesystems refuse to open a folder; rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _copy_synced(source: str, target: str) -> None:
    with open(source, "rb") as f:
        payload = f.read()
    with open(target, "wb") as f:
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())


class StateFile:
    """One versioned JSON state file with its `.bak`, saved atomically.

    `validate(data)` may raise ValueError for data that parses but cannot be used;
    `migrate(version, data)` turns data of an older version into the current one;
    `repair(data)` returns the data with bad values reset, and key -> why for each.
    """

    def __init__(self, folder: str, name: str, kind: str, version: int,
                 defaults: Callable[[], Dict[str, Any]],
                 validate: Optional[Callable[[Dict[str, Any]], None]] = None,
                 migrate: Optional[Callable[[int, Dict[str, Any]], Dict[str, Any]]] = None,
                 repair: Optional[Callable[[Dict[str, Any]],
                                           Tuple[Dict[str, Any], Dict[str, str]]]] = None):
        self.folder = folder
        self.path = os.path.join(folder, name)
        self.backup_path = self.path + BACKUP_SUFFIX
        self.kind = kind
        self.version = version
        self._defaults = defaults
        self._validate = validate
        self._migrate = migrate
        self._repair = repair

    # ---- reading -------------------------------------------------------------------
    def _read(self, path: str) -> Tuple[Dict[str, Any], Dict[str, str]]:
        """The data in `path` (bad values reset) and key -> why for each reset one."""
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError as exc:
            raise StateFileError(exc.strerror or str(exc)) from None
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise StateFileError("not valid JSON (torn or corrupted)") from None
        if not isinstance(doc, dict) or doc.get("format") != f"neurorave-{self.kind}":
            raise StateFileError(f"not a neurorave {self.kind} file")
        version = doc.get("version")
        data = doc.get("data")
        if not isinstance(version, int) or not isinstance(data, dict):
            raise StateFileError("missing version or data")
        if version > self.version:
            raise StateFileError(f"version {version} is newer than this firmware ({self.version})")
        if version < self.version:
            if self._migrate is None:
                raise StateFileError(f"version {version} cannot be read by this firmware")
            data = self._migrate(version, data)
        dropped: Dict[str, str] = {}
        if self._repair is not None:
            data, dropped = self._repair(data)
        if self._validate is not None:
            try:
                self._validate(data)
            except (ValueError, TypeError, KeyError) as exc:
                raise StateFileError(f"bad content: {exc}") from None
        return data, dropped

    def load(self) -> LoadResult:
        """The current file, else the previous copy, else the defaults; never raises."""
        problems: Dict[str, str] = {}
        for path, source in ((self.path, SOURCE_CURRENT), (self.backup_path, SOURCE_BACKUP)):
            if not os.path.exists(path):
                continue
            try:
                data, dropped = self._read(path)
            except StateFileError as exc:
                problems[path] = str(exc)
                continue
            return LoadResult(data, source, problems, dropped, self.kind, path)
        return LoadResult(self._defaults(), SOURCE_DEFAULTS, problems, None, self.kind)

    # ---- writing -------------------------------------------------------------------
    def encode(self, data: Dict[str, Any]) -> bytes:
        doc = {"format": f"neurorave-{self.kind}", "version": self.version, "data": data}
        return (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode("utf-8")

    def save(self, data: Dict[str, Any]) -> Optional[str]:
        """Write `data` atomically, keeping the file it replaces as `.bak`, or, where that
        file could not be read in full, as `<name>.bad-<time>` (whose path is returned).

        Raises OSError (disk full, read-only) with the old files untouched.
        """
        if self._validate is not None:
            self._validate(data)
        payload = self.encode(data)
        os.makedirs(self.folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(self.path) + ".",
                                   suffix=".tmp", dir=self.folder)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
            # The current file becomes the backup only if it is a good one: a torn
            # current file must never overwrite a good backup.
            aside = None
            if self._current_is_good():
                # link + rename keeps a complete `.bak` on disk at every instant.
                bak_tmp = tmp + ".bak"
                try:
                    os.link(self.path, bak_tmp)
                except OSError:
                    # No hard links here (FAT, some FUSE mounts): a synced copy will do.
                    _copy_synced(self.path, bak_tmp)
                os.replace(bak_tmp, self.backup_path)
            elif os.path.lexists(self.path):
                # A player's file this firmware could not read in full: kept, never lost.
                aside = self._keep_aside()
            os.replace(tmp, self.path)
            _fsync_dir(self.folder)
            return aside
        except BaseException:
            for leftover in (tmp, tmp + ".bak"):
                with contextlib.suppress(OSError):
                    os.unlink(leftover)
            raise

    def _current_is_good(self) -> bool:
        """Read in full: no value of it would be reset."""
        if not os.path.exists(self.path):
            return False
        try:
            _, dropped = self._read(self.path)
        except StateFileError:
            return False
        return not dropped

    def _keep_aside(self) -> str:
        """Keep the current file as `<name>.bad-<time>` (a hard link where the filesystem
        has them: no copy can tear). Raises OSError, so that nothing is overwritten, when
        it cannot be kept."""
        stem = self.path + ASIDE_SUFFIX + time.strftime("%Y%m%d-%H%M%S")
        for count in range(1, 100):
            target = stem if count == 1 else f"{stem}-{count}"
            if os.path.lexists(target):
                continue
            try:
                os.link(self.path, target)
            except FileExistsError:
                continue
            except OSError:
                try:
                    _copy_synced(self.path, target)
                except OSError:
                    with contextlib.suppress(OSError):
                        os.unlink(target)  # a half copy is no copy
                    raise
            return target
        raise OSError(f"{self.path}: no free name to keep it aside")

    def remove_leftovers(self) -> int:
        """Delete temporary files left by a save that a power cut interrupted."""
        prefix = "." + os.path.basename(self.path) + "."
        count = 0
        try:
            names = os.listdir(self.folder)
        except OSError:
            return 0
        for name in names:
            if name.startswith(prefix) and (name.endswith(".tmp") or name.endswith(".tmp.bak")):
                try:
                    os.unlink(os.path.join(self.folder, name))
                    count += 1
                except OSError:
                    pass
        return count


# ---- the two files of the module -----------------------------------------------------
SETTINGS_VERSION = 1
CALIBRATION_VERSION = 1


def default_settings() -> Dict[str, Any]:
    return {
        "model": None,  # bundle folder name inside the models folder
        "cv_assign": {"cv2": 0, "cv3": 1, "cv4": 2},  # attribute index per CV, or null
        # attribute name -> [low, high] as fractions (0..1) of the model's range
        "attribute_ranges": {},
        "macro_mode": "random",
        "macro_glide_s": 0.25,
        # stored macro points (per attribute, a fraction 0..1 of its range) for "snapshot"
        "snapshots": [],
        "prior_temperature": 1.0,
        "output_level": 0.8,
        "pitch_mode": False,  # CV drives f0 by 1 V/oct when the model has f0
        # with a prior: "slide" moves attributes away from the prior's, "hold" holds them
        # (absent in files from before it: read as "slide")
        "cv_mode": DEFAULT_CV_MODE,
        # with a prior: what gate 1 starts, "phrase", "hit" or "note"; null: the model's own
        "gate_mode": None,
    }


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_fraction(value: Any) -> bool:
    return _is_number(value) and 0.0 <= value <= 1.0


def _assign_ok(assign: Any) -> bool:
    return isinstance(assign, dict) and all(
        key in ("cv2", "cv3", "cv4")
        and (index is None or (isinstance(index, int) and not isinstance(index, bool)
                               and index >= 0))
        for key, index in assign.items())


def _ranges_ok(ranges: Any) -> bool:
    return isinstance(ranges, dict) and all(
        isinstance(pair, list) and len(pair) == 2 and all(_is_fraction(v) for v in pair)
        and pair[0] <= pair[1] for pair in ranges.values())


def _snapshots_ok(snapshots: Any) -> bool:
    return isinstance(snapshots, list) and all(
        isinstance(point, list) and all(_is_fraction(v) for v in point)
        for point in snapshots)


def _non_negative(value: Any) -> bool:
    return _is_number(value) and value >= 0


# key -> (is the value usable, why not). Each key is checked alone, so that one bad value
# costs only itself.
Rules = Dict[str, Tuple[Callable[[Any], bool], str]]
SETTINGS_RULES: Rules = {
    "model": (lambda v: v is None or isinstance(v, str), "model must be a folder name or null"),
    "cv_assign": (_assign_ok, "cv_assign must map cv2..cv4 to an attribute index or null"),
    "attribute_ranges": (_ranges_ok,
                         "attribute_ranges must map names to [low, high] within 0..1"),
    "macro_mode": (lambda v: v in MACRO_MODES,
                   f"macro_mode must be one of {', '.join(MACRO_MODES)}"),
    "macro_glide_s": (_non_negative, "macro_glide_s must be a number >= 0"),
    "snapshots": (_snapshots_ok, "snapshots must be lists of fractions 0..1"),
    "prior_temperature": (_non_negative, "prior_temperature must be a number >= 0"),
    "output_level": (_non_negative, "output_level must be a number >= 0"),
    "pitch_mode": (lambda v: isinstance(v, bool), "pitch_mode must be true or false"),
    "cv_mode": (lambda v: v in CV_MODES, f"cv_mode must be one of {', '.join(CV_MODES)}"),
    "gate_mode": (lambda v: v is None or v in GATE_MODES,
                  f"gate_mode must be one of {', '.join(GATE_MODES)}, or null"),
}
# Absent from files this firmware wrote earlier: the default is what they meant.
SETTINGS_OPTIONAL = ("model", "cv_mode", "gate_mode")


def _bad_values(data: Dict[str, Any], rules: Rules, optional: Tuple[str, ...]) -> Dict[str, str]:
    """key -> why, for each key of `rules` whose value cannot be used."""
    bad: Dict[str, str] = {}
    for key, (usable, why) in rules.items():
        if key not in data:
            if key not in optional:
                bad[key] = f"{key} is missing"
            continue
        try:
            fine = usable(data[key])
        except (TypeError, ValueError):  # a value of a shape no rule expected
            fine = False
        if not fine:
            bad[key] = why
    return bad


def _repaired(data: Dict[str, Any], rules: Rules, optional: Tuple[str, ...],
              defaults: Dict[str, Any]) -> Tuple[Dict[str, Any], Dict[str, str]]:
    bad = _bad_values(data, rules, optional)
    fixed = dict(data)
    for key in rules:
        if key in bad or key not in fixed:
            fixed[key] = defaults[key]
    return fixed, bad


def validate_settings(data: Dict[str, Any]) -> None:
    """Raise ValueError for settings the daemon could not use (a file that parses but lies)."""
    bad = _bad_values(data, SETTINGS_RULES, SETTINGS_OPTIONAL)
    if bad:
        raise ValueError("; ".join(bad.values()))


def repair_settings(data: Dict[str, Any]) -> Tuple[Dict[str, Any], Dict[str, str]]:
    """Every usable value kept, each bad or missing one reset to its default (key -> why)."""
    return _repaired(data, SETTINGS_RULES, SETTINGS_OPTIONAL, default_settings())


def default_calibration() -> Dict[str, Any]:
    return {
        "cv_offset_v": [0.0] * CV_COUNT,  # added to the board's panel volts
        "cv_scale": [1.0] * CV_COUNT,  # multiplied after the offset
        "pitch": None,  # calibration.PitchCalibration.to_state() once calibrated
    }


def _volts_ok(values: Any) -> bool:
    return isinstance(values, list) and len(values) == CV_COUNT and all(
        _is_number(v) for v in values)


def _pitch_ok(pitch: Any) -> bool:
    # The bounds of calibration.PitchCalibration.from_readings (a 1.6..2.4 V span,
    # a 1 V reading within 0.5 V): anything else was not written by this firmware.
    return pitch is None or (
        isinstance(pitch, dict) and pitch.get("cv") in range(CV_COUNT)
        and _is_number(pitch.get("semitones_per_volt"))
        and 24 / 2.4 - 1e-9 <= pitch["semitones_per_volt"] <= 24 / 1.6 + 1e-9
        and _is_number(pitch.get("reading_at_1v"))
        and abs(pitch["reading_at_1v"] - 1.0) <= 0.5 + 1e-9)


CALIBRATION_RULES: Rules = {
    "cv_offset_v": (_volts_ok, f"cv_offset_v must be a list of {CV_COUNT} numbers"),
    "cv_scale": (lambda v: _volts_ok(v) and all(x != 0 for x in v),
                 f"cv_scale must be a list of {CV_COUNT} numbers, none zero"),
    "pitch": (_pitch_ok, "pitch must be null or a calibration of CV1..CV4"),
}
CALIBRATION_OPTIONAL = ("pitch",)


def validate_calibration(data: Dict[str, Any]) -> None:
    bad = _bad_values(data, CALIBRATION_RULES, CALIBRATION_OPTIONAL)
    if bad:
        raise ValueError("; ".join(bad.values()))


def repair_calibration(data: Dict[str, Any]) -> Tuple[Dict[str, Any], Dict[str, str]]:
    """Every usable value kept, each bad or missing one reset to its default (key -> why)."""
    return _repaired(data, CALIBRATION_RULES, CALIBRATION_OPTIONAL, default_calibration())


def settings_file(folder: Optional[str] = None) -> StateFile:
    return StateFile(folder or default_state_dir(), SETTINGS_FILE, "settings",
                     SETTINGS_VERSION, default_settings, validate_settings,
                     repair=repair_settings)


def calibration_file(folder: Optional[str] = None) -> StateFile:
    return StateFile(folder or default_state_dir(), CALIBRATION_FILE, "calibration",
                     CALIBRATION_VERSION, default_calibration, validate_calibration,
                     repair=repair_calibration)
