"""What the menu's actions do to the instrument: load a model, apply changed settings,
store a snapshot, capture calibration readings, keep a new 1 V/oct calibration."""
import time
from typing import Any, Dict, List, Optional

from neurorave.firmware.calibration import CalibrationError, PitchCalibration, offsets_from_idle
from neurorave.firmware.controls import ControlSettings
from neurorave.firmware.menu import Action, Menu
from neurorave.firmware.model_loading import ModelLoader
from neurorave.firmware.state_keeper import StateKeeper
from neurorave.firmware.status_light import StatusLight
from neurorave.firmware.voice import Voice

CAPTURE_S = 0.5  # calibration readings are averaged over this long


class MenuActions:
    def __init__(self, state: StateKeeper, voice: Voice, menu: Menu, loader: ModelLoader,
                 light: StatusLight):
        self.state = state
        self.voice = voice
        self.menu = menu
        self.loader = loader
        self.light = light
        self._capture: Optional[Dict[str, Any]] = None

    def apply_settings(self) -> None:
        """The voice takes what the settings say now (output, temperature, controls)."""
        settings = self.state.settings
        self.voice.level = float(settings["output_level"])
        self.voice.temperature = float(settings["prior_temperature"])
        self.reconfigure()

    def act(self, actions: List[Action]) -> None:
        for action in actions:
            if action.kind == "load_model":
                self.loader.load(str(action.value))
            elif action.kind == "settings_changed":
                self.state.changed()
                self.apply_settings()
            elif action.kind == "store_snapshot" and self.voice.model is not None:
                point = self.voice.model.mapper.store_snapshot()
                self.state.settings.setdefault("snapshots", []).append(point)
                self.state.changed()
                self.reconfigure()
            elif action.kind in ("calibrate_offsets", "capture_pitch"):
                self._capture = {"kind": action.kind, "cv": action.value,
                                 "until": time.monotonic() + CAPTURE_S, "samples": []}
                self.light.set("calibrating")
            elif action.kind == "pitch_calibrated":
                pitch: PitchCalibration = action.value
                self._keep_calibration(self.state.calibration.with_pitch(pitch))

    def reconfigure(self) -> None:
        model = self.voice.model
        if model is not None:
            model.configure(ControlSettings.from_settings(self.state.settings),
                            self.state.calibration)

    def capturing(self, volts: List[float]) -> None:
        """Readings for a calibration capture under way; finished after CAPTURE_S."""
        capture = self._capture
        if capture is None:
            return
        capture["samples"].append(list(volts))
        if time.monotonic() < capture["until"]:
            return
        self._capture = None
        self.light.set("playing" if self.voice.model is not None else "idle")
        rows = capture["samples"]
        if capture["kind"] == "calibrate_offsets":
            try:
                offsets = offsets_from_idle([[r[i] for r in rows] for i in range(4)])
            except CalibrationError as exc:
                self.menu.show_notice(str(exc))
                return
            self._keep_calibration(self.state.calibration.with_offsets(offsets))
            self.menu.show_notice("offsets stored")
        else:
            cv = int(capture["cv"])
            self.act(self.menu.pitch_captured([r[cv] for r in rows]))

    def _keep_calibration(self, calibration) -> None:
        self.state.save_calibration(calibration)
        self.reconfigure()
