"""`neurorave run`: the instrument. One process, the thread model of DESIGN.md.

- main thread: an asyncio loop, ticking every few milliseconds: newest CV readings and
  gate edges to the voice, encoder gestures to the menu, the OLED redrawn only when
  the menu changed (at most 30 fps), the LED, settings saved after a quiet interval,
  stats, the systemd watchdog, the patch player or the window on the virtual board;
- a worker thread loads models (the old model keeps playing meanwhile);
- the voice thread renders one latent frame ahead into the ring (`voice.py`);
- the audio consumer only copies from the ring into the device (`audio_out.py`): a
  writer thread with blocking writes and two blocks of slack on ALSA, a PortAudio
  callback on PortAudio's JACK host API.

Faults never stop it: a failing ADC holds the last good volts (the CV sampler retries)
and the screen says so; a bad model is refused with a message while the previous one
plays on; a lost audio device is reopened by the audio keeper; a slow frame is counted.
A settings or calibration file it cannot read in full is said on stderr and the screen,
and its good values are kept (`state_files.py`); a model that will not load at start
gives way to the next playable one while the settings keep the player's choice.
SIGTERM and SIGINT fade out, save what changed, and exit 0.
"""
import asyncio
import concurrent.futures
import contextlib
import copy
import math
import os
import signal
import sys
import time
import weakref
from typing import Any, Dict, List, Optional, Tuple

from neurorave.common.errors import UserError, first_line
from neurorave.firmware.calibration import (
    CalibrationError,
    CVCalibration,
    PitchCalibration,
    offsets_from_idle,
)
from neurorave.firmware.controls import (
    CV_COUNT,
    DEFAULT_CV_RANGES,
    ControlSettings,
    attribute_bars,
)
from neurorave.firmware.menu import Action, Menu, ModelEntry, Performance
from neurorave.firmware.realtime import lean_memory, lock_memory
from neurorave.firmware.ring import AudioRing
from neurorave.firmware.screens import draw
from neurorave.firmware.state_files import StateFile, calibration_file, settings_file
from neurorave.firmware.stats import PercentileWindow, Stats, StatsWriter
from neurorave.firmware.voice import Voice, VoiceModel
from neurorave.hardware.interfaces import GateEdge
from neurorave.models.runtime.engines import preload_libraries

DEVICE_RATE = 48000
DEVICE_BLOCK = 256
TICK_S = 0.005            # control rate: 200 Hz
CV_PERIOD_S = 0.005       # CV readings: 200 Hz
DRAW_MIN_S = 1.0 / 30     # the OLED at most 30 frames a second
BARS_EVERY_S = 1.0 / 60   # performance bars: fresh whenever the OLED may redraw
INFO_EVERY_S = 1.0        # system info page and watchdog
SAVE_QUIET_S = 2.0        # settings saved once the player stops turning for this long
GIL_SWITCH_S = 0.0005
DEFAULT_MODEL = "gm-notes"  # the bundled harmonic voice: a fresh module plays it first
CAPTURE_S = 0.5           # calibration readings are averaged over this long
LED_STATES = {"loading": ("yellow", True), "playing": ("green", False),
              "error": ("red", True), "calibrating": ("magenta", True), "idle": ("blue", False)}


def default_models_folder() -> str:
    """The bundled models: models/pretrained inside the installed package."""
    import neurorave.models

    return os.path.join(os.path.dirname(os.path.abspath(neurorave.models.__file__)),
                        "pretrained")


def scan_models(folder: str) -> List[ModelEntry]:
    """Every sub-folder with a model.json, readable or with the reason it is not. The
    hashes are checked when a model loads, not here: a scan at start must be quick."""
    from neurorave.models.runtime.bundle import find_bundles

    entries: List[ModelEntry] = []
    for path, bundle, error in find_bundles(folder, verify_files=False):
        if bundle is None:
            entries.append(ModelEntry(path, os.path.basename(path), error=error or ""))
        else:
            entries.append(ModelEntry(path, bundle.name, bundle.sample_rate,
                                      tuple(a.name for a in bundle.attributes)))
    return entries


def model_candidates(models: List[ModelEntry], wanted: Optional[str]) -> List[ModelEntry]:
    """The playable models in the order they are tried at start: the one the settings
    name, the bundled default, then the others (folder names, as the settings store
    them). A bundle can still fail at load (a bad hash): the next one is tried."""
    playable = [m for m in models if not m.error]
    order: List[ModelEntry] = []
    for name in (wanted, DEFAULT_MODEL):
        order += [m for m in playable
                  if name and _folder_name(m) == name and all(m is not o for o in order)]
    return order + [m for m in playable if all(m is not o for o in order)]


def first_model(models: List[ModelEntry], wanted: Optional[str]) -> Optional[ModelEntry]:
    """What plays at start (the first of `model_candidates`)."""
    candidates = model_candidates(models, wanted)
    return candidates[0] if candidates else None


def _folder_name(entry: ModelEntry) -> str:
    return os.path.basename(entry.folder.rstrip("/"))


class ErrorLines:
    """The daemon's lines on the stderr it started with.

    sounddevice points fd 2 at /dev/null while it re-scans devices (`audio_out.
    rescan_devices`, every few seconds while a device is lost) to hide ALSA's probe
    chatter; a line another thread wrote meanwhile would vanish. Writing to a copy of
    fd 2 taken at start needs no lock that the scheduler could wait on behind a slow
    re-scan, and holds whoever else points fd 2 elsewhere."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        try:
            self._fd = os.dup(2)
        except OSError:
            self._fd = -1  # no fd 2 at all: print() as before
        else:
            weakref.finalize(self, os.close, self._fd)

    def __call__(self, text: str) -> None:
        line = f"{self.prefix}{text}"
        if self._fd < 0:
            print(line, file=sys.stderr, flush=True)
            return
        data = (line + "\n").encode("utf-8", "replace")
        try:
            while data:
                data = data[os.write(self._fd, data):]
        except OSError:
            pass  # stderr closed or full: the stats file still has the errors


def _cpu_temperature() -> Optional[float]:
    try:
        with open("/sys/class/thermal/thermal_zone0/temp") as handle:
            return int(handle.read().strip()) / 1000.0
    except (OSError, ValueError):
        return None


class Daemon:
    def __init__(self, board: str = "sim", models: Optional[str] = None,
                 audio_device: Optional[str] = None, headless: bool = False,
                 patch: Optional[str] = None, seconds: Optional[float] = None,
                 stats_path: Optional[str] = None, engine: str = "auto",
                 state_dir: Optional[str] = None, log=None, panel: Any = None):
        self.board_name = board
        self.models_folder = models or default_models_folder()
        self.audio_device = audio_device
        self.headless = headless
        self.patch_path = patch
        self.seconds = seconds
        self.stats_path = stats_path
        self.engine_kind = engine
        self.state_dir = state_dir
        self.panel = panel  # a panel opened by the caller (tests: real drivers, model chips)
        self._display_failing = False
        self._display_retry_at = 0.0
        self.log = log or ErrorLines("neurorave run: ")
        self.stats = Stats()
        self.state = "idle"
        self._stop: Optional[asyncio.Event] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._loading: Optional[str] = None
        self._queued_load: Optional[str] = None
        self._current: Optional[str] = None  # the folder name of the model last loaded
        self._model_setting: Optional[str] = None  # the player's choice of model
        self._fallbacks: List[ModelEntry] = []  # start-up: the next models to try
        self._loading_at_start = False  # chosen by the start-up order, not the player
        self._saved_settings: Dict[str, Any] = {}  # as the file holds them
        self._settings_dirty_at: Optional[float] = None
        self._capture: Optional[Dict[str, Any]] = None
        self._cv_failing = False
        self._rt_said = False
        self.frames_drawn = 0
        self.turn_ms = PercentileWindow(4096)

    # ---- start-up ---------------------------------------------------------------------
    def _open(self) -> None:
        from neurorave.firmware.audio_out import AudioOutput
        from neurorave.hardware.board import load_board
        from neurorave.hardware.cv_sampler import CvSampler
        from neurorave.hardware.panel import open_panel

        self.settings_store = settings_file(self.state_dir)
        self.calibration_store = calibration_file(self.state_dir)
        loaded = self.settings_store.load()
        self.settings = loaded.data
        # What was read: settings are written only once they differ from it.
        self._saved_settings = copy.deepcopy(loaded.data)
        self._model_setting = self.settings.get("model")
        cal = self.calibration_store.load()
        self.calibration_data = cal.data
        self.calibration = CVCalibration.from_state(cal.data)
        # A first start has no files yet: that is no fault. Anything else (a torn file,
        # a lying one, a few bad values) is said on stderr and the screen, and counted.
        notices = []
        for result in (loaded, cal):
            if result.damaged:
                self.log(result.report)
                self.stats.error(result.report)
                notices.append(result.message)

        if self.panel is None:
            self.panel = open_panel(load_board(self.board_name))
        self.player = None
        if self.patch_path is not None:
            from neurorave.hardware.patch import load_patch
            from neurorave.hardware.sim.player import PatchPlayer

            self.player = PatchPlayer(load_patch(self.patch_path), self.panel)
        self.window = None
        if self.panel.virtual and not self.headless:
            if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY") \
                    and os.environ.get("SDL_VIDEODRIVER") != "dummy":
                self.panel.close()
                raise UserError("no display for the virtual panel window; use --headless "
                                "(with --patch to play a patch)")
            from neurorave.hardware.sim.window import PanelWindow

            self.window = PanelWindow(self.panel)
        # About 200 Hz, as the real ADC reads four channels anyway; a virtual twin would
        # otherwise be read (and the GIL taken) every 2 ms.
        self.sampler = CvSampler(self.panel.cvs, period_s=CV_PERIOD_S)  # starts at once

        self.models = scan_models(self.models_folder)
        self.menu = Menu(self.settings, self.models)
        for text in notices:
            self.menu.show_notice(text)
        self.ring = AudioRing(8 * 4096)
        self.audio = AudioOutput(self.ring, DEVICE_RATE, self.audio_device,
                                 blocksize=DEVICE_BLOCK, on_event=self._audio_event)
        self.voice = Voice(self.ring, DEVICE_RATE, self.stats, lookahead=DEVICE_BLOCK,
                           level=float(self.settings["output_level"]),
                           play_time=self.audio.play_time, on_error=self._voice_error)
        self.voice.temperature = float(self.settings["prior_temperature"])
        self.worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="loader")

    def _audio_event(self, text: str) -> None:
        self.log(f"audio: {text}")
        if not text.startswith("audio playing"):
            self.stats.error(f"audio: {text}")

    def _voice_error(self, text: str) -> None:
        self.stats.error(text)

    # ---- models -----------------------------------------------------------------------
    def _first_model(self) -> Optional[ModelEntry]:
        """The model to load at start; the others playable wait in `_fallbacks`."""
        wanted = self._model_setting
        candidates = model_candidates(self.models, wanted)
        if not candidates:
            return None
        first, self._fallbacks = candidates[0], candidates[1:]
        if wanted and _folder_name(first) != wanted:
            named = [m for m in self.models if _folder_name(m) == wanted]
            why = named[0].error if named else f"not in {self.models_folder}"
            self._say(f"model {wanted} (named in the settings): {why}; "
                      f"trying {_folder_name(first)} instead, the settings keep {wanted}")
        return first

    def _say(self, text: str) -> None:
        self.log(text)
        self.stats.error(text)

    def _load(self, folder: str, at_start: bool = False) -> None:
        if self._loading is not None:
            self._queued_load = folder  # the player's choice meanwhile: loaded next
            return
        self._loading = folder
        self._loading_at_start = at_start
        self._set_state("loading")
        assert self._loop is not None
        future = self._loop.run_in_executor(
            self.worker, lambda: VoiceModel(folder, DEVICE_RATE, self.engine_kind, 1,
                                            ControlSettings.from_settings(self.settings),
                                            self.calibration, cv_ranges=self._cv_ranges()))
        future.add_done_callback(lambda f: self._loaded(folder, f))

    def _cv_ranges(self) -> List[Tuple[float, float]]:
        """The board's volts range per CV (a 0-10 V build slides up only)."""
        ranges = [(c.min_volts, c.max_volts) for c in self.panel.board.cvs][:CV_COUNT]
        return ranges + list(DEFAULT_CV_RANGES[len(ranges):])

    def _loaded(self, folder: str, future: "asyncio.Future[VoiceModel]") -> None:
        self._loading = None
        self._take_loaded(folder, future)
        if self._queued_load is not None and self._loading is None:
            queued, self._queued_load = self._queued_load, None
            if queued != folder:
                self._load(queued)

    def _take_loaded(self, folder: str, future: "asyncio.Future[VoiceModel]") -> None:
        try:
            model = future.result()
        except Exception as exc:  # noqa: BLE001 - any bad bundle: say why, keep playing
            reason = first_line(exc)
            text = f"model {os.path.basename(folder)}: {reason}"
            self.menu.show_notice(f"load failed: {reason}")
            # The menu may have named it in the settings: the player's last good choice
            # stays (one that failed at start comes back once its bundle is repaired).
            self.settings["model"] = self._model_setting
            self._settings_dirty_at = time.monotonic()
            if self._current is None and self._fallbacks:
                # Nothing plays yet: the next playable model rather than silence.
                following = self._fallbacks.pop(0)
                keep = (f", the settings keep {self._model_setting}"
                        if self._model_setting else "")
                self._say(f"{text}; trying {_folder_name(following)} instead{keep}")
                self._load(following.folder, at_start=True)
                return
            self._say(text)
            self._set_state("playing" if self._current is not None else "error")
            if self._current is None:
                self.menu.set_performance(Performance("", (), f"no model: {reason}"))
            return
        self.voice.set_model(model)
        self._current = os.path.basename(folder.rstrip("/"))
        self.menu.playing = self._current
        self._fallbacks = []
        if not self._loading_at_start:  # the player chose it in the menu
            self._model_setting = self.settings["model"] = self._current
        elif self._model_setting is None:
            # Nothing chosen yet: name what plays, but that alone is no change to write.
            self._model_setting = self.settings["model"] = self._current
            self._saved_settings["model"] = self._current
        # A choice that gave way at start stays in the settings, to come back repaired.
        self.stats.engine, self.stats.provider = model.engine.kind, model.engine.provider
        self.stats.extra["model"] = model.name
        self.stats.extra["load_s"] = round(model.load_s, 3)
        self.stats.extra["sample_rate"] = model.sample_rate
        self.stats.extra["frame_size"] = model.samples_per_call
        for note in model.engine.notes:
            self.log(f"engine: {note}")
        self.log(f"playing {model.describe()} (loaded in {model.load_s:.2f} s)")
        self.menu.set_attributes([a.name for a in model.bundle.attributes])
        self._set_state("playing")

    def _set_state(self, state: str) -> None:
        if state == self.state:
            return
        self.state = state
        colour, blink = LED_STATES[state]
        try:
            if blink:
                self.panel.led.blink(colour, on_s=0.15, off_s=0.15)
            else:
                self.panel.led.set_colour(colour)
        except Exception as exc:  # noqa: BLE001 - an LED fault is not worth a stop
            self.stats.error(f"LED: {exc}")

    # ---- menu actions -------------------------------------------------------------------
    def _act(self, actions: List[Action]) -> None:
        for action in actions:
            if action.kind == "load_model":
                self._load(str(action.value))
            elif action.kind == "settings_changed":
                self._settings_dirty_at = time.monotonic()
                self.voice.level = float(self.settings["output_level"])
                self.voice.temperature = float(self.settings["prior_temperature"])
                self._reconfigure()
            elif action.kind == "store_snapshot" and self.voice.model is not None:
                point = self.voice.model.mapper.store_snapshot()
                self.settings.setdefault("snapshots", []).append(point)
                self._settings_dirty_at = time.monotonic()
                self._reconfigure()
            elif action.kind in ("calibrate_offsets", "capture_pitch"):
                self._capture = {"kind": action.kind, "cv": action.value,
                                 "until": time.monotonic() + CAPTURE_S, "samples": []}
                self._set_state("calibrating")
            elif action.kind == "pitch_calibrated":
                pitch: PitchCalibration = action.value
                self.calibration = self.calibration.with_pitch(pitch)
                self._save_calibration()

    def _reconfigure(self) -> None:
        model = self.voice.model
        if model is not None:
            model.configure(ControlSettings.from_settings(self.settings), self.calibration)

    def _capturing(self, volts: List[float]) -> None:
        capture = self._capture
        if capture is None:
            return
        capture["samples"].append(list(volts))
        if time.monotonic() < capture["until"]:
            return
        self._capture = None
        self._set_state("playing" if self.voice.model is not None else "idle")
        rows = capture["samples"]
        if capture["kind"] == "calibrate_offsets":
            try:
                offsets = offsets_from_idle([[r[i] for r in rows] for i in range(4)])
            except CalibrationError as exc:
                self.menu.show_notice(str(exc))
                return
            self.calibration = self.calibration.with_offsets(offsets)
            self._save_calibration()
            self.menu.show_notice("offsets stored")
        else:
            cv = int(capture["cv"])
            self._act(self.menu.pitch_captured([r[cv] for r in rows]))

    def _save_calibration(self) -> None:
        try:
            self._kept_aside(self.calibration_store,
                             self.calibration_store.save(self.calibration.to_state()))
        except Exception as exc:  # noqa: BLE001 - keep playing; say so
            self.stats.error(f"calibration not saved: {exc}")
            self.menu.show_notice("calibration NOT saved")
        self._reconfigure()

    def _save_settings(self) -> None:
        """Write the settings if they differ from the file: an unchanged (or unread)
        file is left as it is."""
        self._settings_dirty_at = None
        if self.settings == self._saved_settings:
            return
        try:
            self._kept_aside(self.settings_store, self.settings_store.save(self.settings))
        except Exception as exc:  # noqa: BLE001 - keep playing; say so
            self.stats.error(f"settings not saved: {exc}")
            self.menu.show_notice("settings NOT saved")
            return
        self._saved_settings = copy.deepcopy(self.settings)

    def _kept_aside(self, store: StateFile, aside: Optional[str]) -> None:
        if aside:
            self.log(f"{store.path} could not be read in full: kept it as {aside}, "
                     f"then wrote it anew")

    # ---- the loop -----------------------------------------------------------------------
    def _events(self) -> None:
        for event in self.panel.events.drain():
            if isinstance(event, GateEdge):
                self.voice.post_gate(event.gate, event.rising, event.t_ns)
            else:
                self._act(self.menu.handle(event))

    def _controls(self) -> None:
        snapshot = self.sampler.latest()
        self.voice.volts = list(snapshot.volts)
        if not snapshot.ok and not self._cv_failing:
            self._cv_failing = True
            self.stats.error(f"CV: {snapshot.error}")
            self.log(f"CV inputs failing, holding the last good volts: {snapshot.error}")
            self.menu.show_notice("CV input fault: holding")
        elif snapshot.ok and self._cv_failing:
            self._cv_failing = False
            self.log("CV inputs back")
            self.menu.show_notice("CV input back")
        self._capturing(snapshot.volts)

    def _bars(self) -> None:
        model = self.voice.model
        if model is None or model.played is None:
            return
        bars = tuple(attribute_bars(model.played, model.bundle.attributes))
        self.menu.set_performance(Performance(model.name, bars, self.state))

    def _info(self) -> None:
        model = self.voice.model
        p50 = self.stats.inference.percentile(50)
        lines = []
        if model is not None:
            provider = model.engine.provider.replace("ExecutionProvider", "")
            lines.append(f"{model.engine.kind} {provider}")
            if p50:
                frame_ms = 1e3 / model.frame_rate_hz
                lines.append(f"RT x{frame_ms / p50:.0f}  late {self.voice.late_frames}")
        lines.append(f"underflows {self.audio.underflows}")
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        temp = _cpu_temperature()
        lines.append((f"load {load:.2f}" if load is not None else "load ?")
                     + (f"  {temp:.0f} C" if temp is not None else ""))
        if not self._rt_said and (self.voice.realtime_refused
                                  or self.audio.callback_realtime_refused):
            self._rt_said = True
            for part, why in (("voice thread", self.voice.realtime_refused),
                              ("audio consumer", self.audio.callback_realtime_refused)):
                if why:
                    self.log(f"{part} without real-time priority: {why}")
        self.menu.set_system_info(lines)
        if "first_sound_unix" not in self.stats.extra \
                and self.voice.first_sound_index is not None:
            heard = self.audio.play_time(self.voice.first_sound_index)
            if heard is not None:  # when the first sound reaches the DAC, wall clock
                self.stats.extra["first_sound_unix"] = time.time() - time.monotonic() + heard
        self.stats.extra.update({"late_frames": self.voice.late_frames,
                                 "ring_threshold": self.voice.threshold(),
                                 "oled_frames": self.frames_drawn,
                                 "scheduler_turn_ms": self.turn_ms.summary(),
                                 "bad_frames": self.voice.bad_frames,
                                 "frames": self.voice.frames, "state": self.state,
                                 "audio": self.audio.status()})

    def _draw(self) -> None:
        now = time.monotonic()
        if self._display_failing and now < self._display_retry_at:
            self.menu.invalidate()  # still owed: a still page must be retried too
            return
        try:
            self.panel.display.show(draw(self.menu.view()))
            self.frames_drawn += 1
        except Exception as exc:  # noqa: BLE001 - a loose OLED cable: note it, carry on
            if not self._display_failing:
                self.stats.error(f"display: {exc}")
                self.log(f"display failing, retrying every second: {exc}")
            self._display_failing = True
            self._display_retry_at = now + 1.0
            self.menu.invalidate()  # redraw everything once it answers again
            return
        if self._display_failing:
            self._display_failing = False
            self.log("display back")

    async def _main(self) -> int:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                self._loop.add_signal_handler(sig, self._stop.set)
        # On the module every page stays resident (no page fault mid-frame). A laptop's
        # virtual board does without: locking maps in every library whole (~2x the RSS).
        if not self.panel.virtual or os.environ.get("NEURORAVE_MLOCK"):
            refused = lock_memory()
            if refused:
                self.log(f"carrying on without locked memory: {refused}")
        preload_libraries()
        self.audio.start()
        self.voice.start()
        first = self._first_model()
        if first is not None:
            self._load(first.folder, at_start=True)
        else:
            why = (f"no playable model in {self.models_folder}" if not self.models
                   else f"no playable model: {self.models[0].error}")
            self.log(why)
            self.stats.error(why)
            self.menu.set_performance(Performance("", (), why))
            self._set_state("error")
        writer = StatsWriter(self.stats_path, self.stats, lambda: self.audio.underflows) \
            if self.stats_path else None
        notifier = _notifier()
        notifier("READY=1")
        start = time.monotonic()
        if self.player is not None:  # patch time 0 is now: its edges carry true times
            self.player.start_ns = int(start * 1e9)
        last = {"draw": 0.0, "bars": 0.0, "info": 0.0}
        while not self._stop.is_set():
            now = time.monotonic()
            if self.player is not None:
                self.player.advance(now - start)
            tick = getattr(self.panel.encoder, "tick", None)
            if tick is not None:
                tick()
            self._controls()
            self._events()
            if now - last["bars"] >= BARS_EVERY_S:
                last["bars"] = now
                self._bars()
            if now - last["info"] >= INFO_EVERY_S:
                last["info"] = now
                self._info()
                notifier("WATCHDOG=1")
            if now - last["draw"] >= DRAW_MIN_S and self.menu.take_changed():
                last["draw"] = now
                self._draw()
            if self.window is not None and not self.window.pump():
                break
            if (self._settings_dirty_at is not None
                    and now - self._settings_dirty_at >= SAVE_QUIET_S):
                self._save_settings()
            if writer is not None:
                writer.tick()
            if self.seconds is not None and now - start >= self.seconds:
                break
            # How long a turn holds the main thread (and mostly the GIL, which the
            # audio consumer also needs).
            self.turn_ms.add((time.monotonic() - now) * 1e3)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), TICK_S)
        notifier("STOPPING=1")
        self._shutdown(writer)
        return 0

    def _shutdown(self, writer: Optional[StatsWriter]) -> None:
        self.voice.stop(timeout=0.5)
        # Let the fade-out reach the DAC before the stream closes.
        deadline = time.monotonic() + 0.3
        while self.ring.available() > 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        self._info()
        self.audio.stop(timeout=1.0)
        self._save_settings()
        self.sampler.close()
        if writer is not None:
            writer.close()
        self.worker.shutdown(wait=False)
        if self.window is not None:
            self.window.close()
        try:
            self.panel.close()
        except Exception as exc:  # noqa: BLE001 - exiting anyway
            self.log(f"closing the panel: {exc}")

    def run(self) -> int:
        lean_memory()
        # The audio consumer is Python: it needs the GIL within its slack (one device
        # block, 5.3 ms, for a callback). Python hands the GIL over every 5 ms by
        # default; ask for 0.5 ms.
        sys.setswitchinterval(GIL_SWITCH_S)
        self._open()
        return asyncio.run(self._main())


def _notifier():
    """systemd's sd_notify where the unit asked for it (NOTIFY_SOCKET), else nothing."""
    if not os.environ.get("NOTIFY_SOCKET"):
        return lambda state: None
    try:
        import sdnotify
    except ImportError:
        return lambda state: None
    notifier = sdnotify.SystemdNotifier()
    return notifier.notify


def main(args: Any) -> int:
    if args.seconds is not None and not (math.isfinite(args.seconds) and args.seconds > 0):
        raise UserError(f"--seconds must be a positive number, got {args.seconds}")
    if args.models is not None and not os.path.isdir(args.models):
        raise UserError(f"{args.models}: no such models folder")
    from neurorave.hardware.board import default_board

    seconds = args.seconds
    if args.patch is not None:
        from neurorave.hardware.patch import load_patch

        patch = load_patch(args.patch)  # a bad patch is one line before anything starts
        if seconds is None:
            seconds = patch.seconds  # the patch says how long it lasts
    daemon = Daemon(args.board or default_board(), args.models, args.audio_device,
                    args.headless, args.patch, seconds, args.stats, args.engine)
    status = daemon.run()
    # Everything is saved and closed. Skip the interpreter's exit-time Pa_Terminate:
    # PortAudio 19.6's JACK host API crashes in it once its server has died (a lost
    # device the daemon survived must not turn into a crash at exit).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
