"""The daemon's settings and calibration: read at start, written only when changed.

A file it cannot read in full is said on stderr, in the stats and on the screen, and
its good values are kept (`state_files.py`). Settings are written once the player has
stopped turning for SAVE_QUIET_S, and only when they differ from what the file holds;
calibration is written at once (it is rare and precious). A failed write keeps
playing and says so.
"""
import copy
import time
from typing import Any, Callable, Dict, List, Optional

from neurorave.firmware.calibration import CVCalibration
from neurorave.firmware.state_files import StateFile, calibration_file, settings_file
from neurorave.firmware.stats import Stats

SAVE_QUIET_S = 2.0  # settings saved once the player stops turning for this long


class StateKeeper:
    def __init__(self, state_dir: Optional[str], log: Callable[[str], None], stats: Stats):
        self.log = log
        self.stats = stats
        self.notify: Callable[[str], None] = lambda text: None  # the menu's, once it exists
        self.settings_store = settings_file(state_dir)
        self.calibration_store = calibration_file(state_dir)
        self.settings: Dict[str, Any] = {}
        self.calibration = CVCalibration()
        self._saved_settings: Dict[str, Any] = {}  # as the file holds them
        self._dirty_at: Optional[float] = None
        # Off for a run whose settings a patch gave: a demo never overwrites the
        # player's files.
        self.saving = True

    def load(self) -> List[str]:
        """Read both files; the notices to show for those that were damaged."""
        loaded = self.settings_store.load()
        self.settings = loaded.data
        # What was read: settings are written only once they differ from it.
        self._saved_settings = copy.deepcopy(loaded.data)
        cal = self.calibration_store.load()
        self.calibration = CVCalibration.from_state(cal.data)
        # A first start has no files yet: that is no fault. Anything else (a torn file,
        # a lying one, a few bad values) is said on stderr and the screen, and counted.
        notices = []
        for result in (loaded, cal):
            if result.damaged:
                self.log(result.report)
                self.stats.error(result.report)
                notices.append(result.message)
        return notices

    def changed(self) -> None:
        """The settings changed: written once the player is quiet."""
        self._dirty_at = time.monotonic()

    def known_as_saved(self, key: str) -> None:
        """`settings[key]` as it is now counts as what the file holds (no change to write)."""
        self._saved_settings[key] = copy.deepcopy(self.settings[key])

    def tick(self, now: float) -> None:
        if self._dirty_at is not None and now - self._dirty_at >= SAVE_QUIET_S:
            self.save_settings()

    def save_settings(self) -> None:
        """Write the settings if they differ from the file: an unchanged (or unread)
        file is left as it is."""
        self._dirty_at = None
        if not self.saving or self.settings == self._saved_settings:
            return
        try:
            self._kept_aside(self.settings_store, self.settings_store.save(self.settings))
        except Exception as exc:  # noqa: BLE001 - keep playing; say so
            self.stats.error(f"settings not saved: {exc}")
            self.notify("settings NOT saved")
            return
        self._saved_settings = copy.deepcopy(self.settings)

    def save_calibration(self, calibration: CVCalibration) -> None:
        self.calibration = calibration
        if not self.saving:
            return
        try:
            self._kept_aside(self.calibration_store,
                             self.calibration_store.save(calibration.to_state()))
        except Exception as exc:  # noqa: BLE001 - keep playing; say so
            self.stats.error(f"calibration not saved: {exc}")
            self.notify("calibration NOT saved")

    def _kept_aside(self, store: StateFile, aside: Optional[str]) -> None:
        if aside:
            self.log(f"{store.path} could not be read in full: kept it as {aside}, "
                     f"then wrote it anew")
