"""Settings and calibration files in the state directory (DESIGN.md "Settings and calibration").

Two files, kept apart as hardware synthesizers do: `settings.json` (what the player
chose: model, CV assignments, macro mode...) and `calibration.json` (per-CV offset and
scale). Each is a JSON object `{"format": ..., "version": N, "data": {...}}`.

A module's power is cut without warning every time the case is switched off, so a
save is atomic: write a temporary file in the same folder, fsync it, keep the current
file as `<name>.bak`, rename the temporary file over the name, fsync the folder. At
every instant the folder holds a complete current file or a complete `.bak` (or both).
Loading tries the file, then `.bak`, then the defaults, and reports which one it used
so the screen can say so.

Where it plugs in: the scheduler loads both at start (`load()`), shows
`LoadResult.message` when `source` is not "current", and calls `save()` after a quiet
interval when the menu changed something.
"""
import contextlib
import json
import math
import os
import tempfile
from typing import Any, Callable, Dict, Optional

from neurorave.firmware.calibration import CV_COUNT
from neurorave.firmware.controls import CV_MODES, DEFAULT_CV_MODE, MACRO_MODES

STATE_DIR_ENV = "NEURORAVE_STATE_DIR"
SYSTEM_STATE_DIR = "/var/lib/neurorave"
SETTINGS_FILE = "settings.json"
CALIBRATION_FILE = "calibration.json"
BACKUP_SUFFIX = ".bak"

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

    def __init__(self, data: Dict[str, Any], source: str, problems: Dict[str, str]):
        self.data = data
        self.source = source  # SOURCE_CURRENT, SOURCE_BACKUP or SOURCE_DEFAULTS
        self.problems = problems  # file path -> what was wrong with it

    @property
    def fell_back(self) -> bool:
        return self.source != SOURCE_CURRENT

    @property
    def message(self) -> str:
        """One short line for the screen; empty when the current file was fine."""
        if self.source == SOURCE_CURRENT:
            return ""
        if self.source == SOURCE_BACKUP:
            return "previous copy restored"
        if self.problems:
            return "defaults: files unreadable"
        return "defaults: first start"

    def __repr__(self) -> str:
        return f"LoadResult(source={self.source!r}, problems={self.problems!r})"


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
    `migrate(version, data)` turns data of an older version into the current one.
    """

    def __init__(self, folder: str, name: str, kind: str, version: int,
                 defaults: Callable[[], Dict[str, Any]],
                 validate: Optional[Callable[[Dict[str, Any]], None]] = None,
                 migrate: Optional[Callable[[int, Dict[str, Any]], Dict[str, Any]]] = None):
        self.folder = folder
        self.path = os.path.join(folder, name)
        self.backup_path = self.path + BACKUP_SUFFIX
        self.kind = kind
        self.version = version
        self._defaults = defaults
        self._validate = validate
        self._migrate = migrate

    # ---- reading -------------------------------------------------------------------
    def _read(self, path: str) -> Dict[str, Any]:
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
        if self._validate is not None:
            try:
                self._validate(data)
            except (ValueError, TypeError, KeyError) as exc:
                raise StateFileError(f"bad content: {exc}") from None
        return data

    def load(self) -> LoadResult:
        """The current file, else the previous copy, else the defaults; never raises."""
        problems: Dict[str, str] = {}
        for path, source in ((self.path, SOURCE_CURRENT), (self.backup_path, SOURCE_BACKUP)):
            if not os.path.exists(path):
                continue
            try:
                return LoadResult(self._read(path), source, problems)
            except StateFileError as exc:
                problems[path] = str(exc)
        return LoadResult(self._defaults(), SOURCE_DEFAULTS, problems)

    # ---- writing -------------------------------------------------------------------
    def encode(self, data: Dict[str, Any]) -> bytes:
        doc = {"format": f"neurorave-{self.kind}", "version": self.version, "data": data}
        return (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode("utf-8")

    def save(self, data: Dict[str, Any]) -> None:
        """Write `data` atomically, keeping the file it replaces as `.bak`.

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
            if self._current_is_good():
                # link + rename keeps a complete `.bak` on disk at every instant.
                bak_tmp = tmp + ".bak"
                try:
                    os.link(self.path, bak_tmp)
                except OSError:
                    # No hard links here (FAT, some FUSE mounts): a synced copy will do.
                    _copy_synced(self.path, bak_tmp)
                os.replace(bak_tmp, self.backup_path)
            os.replace(tmp, self.path)
            _fsync_dir(self.folder)
        except BaseException:
            for leftover in (tmp, tmp + ".bak"):
                with contextlib.suppress(OSError):
                    os.unlink(leftover)
            raise

    def _current_is_good(self) -> bool:
        if not os.path.exists(self.path):
            return False
        try:
            self._read(self.path)
        except StateFileError:
            return False
        return True

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
    }


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_fraction(value: Any) -> bool:
    return _is_number(value) and 0.0 <= value <= 1.0


def validate_settings(data: Dict[str, Any]) -> None:
    """Raise ValueError for settings the daemon could not use (a file that parses but lies)."""
    if data.get("macro_mode") not in MACRO_MODES:
        raise ValueError(f"macro_mode must be one of {', '.join(MACRO_MODES)}")
    for key in ("prior_temperature", "output_level", "macro_glide_s"):
        value: Any = data.get(key)
        if not _is_number(value) or value < 0:
            raise ValueError(f"{key} must be a number >= 0")
    if not isinstance(data.get("pitch_mode"), bool):
        raise ValueError("pitch_mode must be true or false")
    if data.get("cv_mode", DEFAULT_CV_MODE) not in CV_MODES:
        raise ValueError(f"cv_mode must be one of {', '.join(CV_MODES)}")
    model = data.get("model")
    if model is not None and not isinstance(model, str):
        raise ValueError("model must be a folder name or null")
    assign = data.get("cv_assign")
    if not isinstance(assign, dict) or not all(
            key in ("cv2", "cv3", "cv4")
            and (index is None or (isinstance(index, int) and not isinstance(index, bool)
                                   and index >= 0))
            for key, index in assign.items()):
        raise ValueError("cv_assign must map cv2..cv4 to an attribute index or null")
    ranges = data.get("attribute_ranges")
    if not isinstance(ranges, dict) or not all(
            isinstance(pair, list) and len(pair) == 2 and all(_is_fraction(v) for v in pair)
            and pair[0] <= pair[1] for pair in ranges.values()):
        raise ValueError("attribute_ranges must map names to [low, high] within 0..1")
    snapshots = data.get("snapshots")
    if not isinstance(snapshots, list) or not all(
            isinstance(point, list) and all(_is_fraction(v) for v in point)
            for point in snapshots):
        raise ValueError("snapshots must be lists of fractions 0..1")


def default_calibration() -> Dict[str, Any]:
    return {
        "cv_offset_v": [0.0] * CV_COUNT,  # added to the board's panel volts
        "cv_scale": [1.0] * CV_COUNT,  # multiplied after the offset
        "pitch": None,  # calibration.PitchCalibration.to_state() once calibrated
    }


def validate_calibration(data: Dict[str, Any]) -> None:
    for key in ("cv_offset_v", "cv_scale"):
        values = data.get(key)
        if not isinstance(values, list) or len(values) != CV_COUNT or not all(
                _is_number(v) for v in values):
            raise ValueError(f"{key} must be a list of {CV_COUNT} numbers")
    if any(v == 0 for v in data["cv_scale"]):
        raise ValueError("cv_scale must not be zero")
    pitch = data.get("pitch")
    if pitch is None:
        return
    # The bounds of calibration.PitchCalibration.from_readings (a 1.6..2.4 V span,
    # a 1 V reading within 0.5 V): anything else was not written by this firmware.
    if not (isinstance(pitch, dict) and pitch.get("cv") in range(CV_COUNT)
            and _is_number(pitch.get("semitones_per_volt"))
            and 24 / 2.4 - 1e-9 <= pitch["semitones_per_volt"] <= 24 / 1.6 + 1e-9
            and _is_number(pitch.get("reading_at_1v"))
            and abs(pitch["reading_at_1v"] - 1.0) <= 0.5 + 1e-9):
        raise ValueError("pitch must be null or a calibration of CV1..CV4")


def settings_file(folder: Optional[str] = None) -> StateFile:
    return StateFile(folder or default_state_dir(), SETTINGS_FILE, "settings",
                     SETTINGS_VERSION, default_settings, validate_settings)


def calibration_file(folder: Optional[str] = None) -> StateFile:
    return StateFile(folder or default_state_dir(), CALIBRATION_FILE, "calibration",
                     CALIBRATION_VERSION, default_calibration, validate_calibration)
