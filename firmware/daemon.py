"""`neurorave run`: the instrument. One process, the thread model of DESIGN.md.

- main thread: an asyncio loop, ticking every few milliseconds: newest CV readings to
  the voice (gate edges reach it straight from the thread that saw them), encoder
  gestures to the menu, the OLED redrawn only when the menu changed (at most 30 fps),
  the LED, settings saved after a quiet interval, stats, the systemd watchdog, the
  window on the virtual board (a patch plays on a thread of its own, each edge at its
  time, as the jacks would);
- a worker thread loads models (the old model keeps playing meanwhile);
- the voice thread renders one latent frame ahead into the ring (`voice.py`);
- the audio consumer only copies from the ring into the device (`audio_out.py`).

Each job has its own file; this one creates the parts, wires them and runs the loop:
`audio_supervision.py` (ring, device, its events), `state_keeper.py` (settings and
calibration, never lost), `model_loading.py` (what plays, loading the next),
`menu_actions.py` (what the menu's choices do), `panel_inputs.py` (CVs, gates,
encoder), `screen_keeper.py` (the OLED), `system_report.py` (system page and stats),
`status_light.py` (the LED). Faults never stop it; SIGTERM and SIGINT fade out, save
what changed, and exit 0.
"""
import asyncio
import contextlib
import math
import os
import signal
import sys
import threading
import time
from typing import Any, List, Optional, Tuple

from neurorave.common.errors import UserError
from neurorave.firmware.audio_supervision import AudioSupervision
from neurorave.firmware.controls import CV_COUNT, DEFAULT_CV_RANGES, ControlSettings
from neurorave.firmware.engine_upgrade import EngineUpgrade
from neurorave.firmware.error_lines import ErrorLines
from neurorave.firmware.menu import Menu
from neurorave.firmware.menu_actions import MenuActions
from neurorave.firmware.model_loading import (
    DEFAULT_MODEL,
    ModelLoader,
    default_models_folder,
    scan_models,
)
from neurorave.firmware.panel_inputs import PanelInputs
from neurorave.firmware.realtime import lean_memory, lock_memory
from neurorave.firmware.screen_keeper import ScreenKeeper
from neurorave.firmware.state_files import default_state_dir
from neurorave.firmware.state_keeper import StateKeeper
from neurorave.firmware.stats import Stats, StatsWriter
from neurorave.firmware.status_light import StatusLight
from neurorave.firmware.system_report import SystemReport
from neurorave.firmware.voice import Voice, VoiceModel
from neurorave.hardware.sim.player import run_in_thread
from neurorave.models.runtime.engines import preload_libraries

DEVICE_RATE = 48000
DEVICE_BLOCK = 256
TICK_S = 0.005            # control rate: 200 Hz
CV_PERIOD_S = 0.005       # CV readings: 200 Hz
DRAW_MIN_S = 1.0 / 30     # the OLED at most 30 frames a second
BARS_EVERY_S = 1.0 / 60   # performance bars: fresh whenever the OLED may redraw
INFO_EVERY_S = 1.0        # system info page and watchdog
GIL_SWITCH_S = 0.0005


def cv_ranges(board) -> List[Tuple[float, float]]:
    """The board's volts range per CV (a 0-10 V build slides up only)."""
    ranges = [(c.min_volts, c.max_volts) for c in board.cvs][:CV_COUNT]
    return ranges + list(DEFAULT_CV_RANGES[len(ranges):])


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
        self.log = log or ErrorLines("neurorave run: ")
        self.stats = Stats()
        self._stop: Optional[asyncio.Event] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None

    # ---- the parts, created and wired -------------------------------------------------
    def _open(self) -> None:
        from neurorave.hardware.board import load_board
        from neurorave.hardware.cv_sampler import CvSampler
        from neurorave.hardware.panel import open_panel

        self.state_keeper = StateKeeper(self.state_dir, self.log, self.stats)
        notices = self.state_keeper.load()
        models = scan_models(self.models_folder)
        patch = self._patch(models)  # a bad [settings] is one line before the panel opens
        if self.panel is None:
            self.panel = open_panel(load_board(self.board_name))
        self.player = self._patch_player(patch)
        self.window = self._window()
        # About 200 Hz, as the real ADC reads four channels anyway; a virtual twin would
        # otherwise be read (and the GIL taken) every 2 ms.
        self.sampler = CvSampler(self.panel.cvs, period_s=CV_PERIOD_S)  # starts at once
        settings = self.settings
        self.menu = Menu(settings, models)
        # The board's encoder acceleration speeds up value edits in the menu.
        self.menu.accelerate = self.panel.board.encoder.acceleration
        self.state_keeper.notify = self.menu.show_notice
        for text in notices:
            self.menu.show_notice(text)
        self.light = StatusLight(self.panel.led, self.stats)
        self.audio = AudioSupervision(self.audio_device, DEVICE_RATE, DEVICE_BLOCK,
                                      self.stats, self.log)
        self.voice = Voice(self.audio.ring, DEVICE_RATE, self.stats, lookahead=DEVICE_BLOCK,
                           level=float(settings["output_level"]),
                           play_time=self.audio.output.play_time, on_error=self.stats.error)
        self.voice.temperature = float(settings["prior_temperature"])
        # GPU engines: compiled once into engines/ in the state directory; with `auto` a
        # model plays on the CPU engine until its GPU engine is built (engine_upgrade.py).
        self.engine_cache = os.path.join(self.state_dir or default_state_dir(), "engines")
        upgrade = EngineUpgrade(self.voice, self.stats, self.log, self._notice_from_thread,
                                self.engine_cache) if self.engine_kind == "auto" else None
        if upgrade is not None:
            self.voice.on_engine_failed = upgrade.engine_failed
        self.loader = ModelLoader(self.models_folder, models, self.state_keeper,
                                  self.voice, self.menu, self.stats, self.light, self.log,
                                  self._make_model, upgrade)
        self.actions = MenuActions(self.state_keeper, self.voice, self.menu, self.loader,
                                   self.light)
        # Gate edges reach the voice from the thread that saw them, not at the next
        # scheduler turn (up to TICK_S later).
        self.panel.events.set_gate_sink(self.voice.post_gate)
        self.inputs = PanelInputs(self.panel, self.sampler, self.voice, self.menu,
                                  self.actions, self.stats, self.log)
        self.screen = ScreenKeeper(self.panel.display, self.menu, self.voice, self.light,
                                   self.stats, self.log, self.audio.output.status_line)
        self.report = SystemReport(self.voice, self.audio.output, self.menu, self.light,
                                   self.stats, self.log, lambda: self.screen.frames_drawn,
                                   lambda: self.sampler.latest().reads)

    def _patch(self, models):
        """The patch to play, its [settings] over the loaded ones for this run only."""
        if self.patch_path is None:
            return None
        from neurorave.firmware.patch_settings import for_run, overrides
        from neurorave.hardware.patch import load_patch

        patch = load_patch(self.patch_path)
        if overrides(patch):
            state = self.state_keeper
            state.settings, state.calibration = for_run(
                patch, state.settings, state.calibration, models, DEFAULT_MODEL,
                self.models_folder)
            state.saving = False  # a demo never overwrites the player's files
        return patch

    def _patch_player(self, patch):
        if patch is None:
            return None
        from neurorave.hardware.sim.player import PatchPlayer

        return PatchPlayer(patch, self.panel)

    def _window(self):
        if not self.panel.virtual or self.headless:
            return None
        if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY") \
                and os.environ.get("SDL_VIDEODRIVER") != "dummy":
            self.panel.close()
            raise UserError("no display for the virtual panel window; use --headless "
                            "(with --patch to play a patch)")
        from neurorave.hardware.sim.window import PanelWindow

        return PanelWindow(self.panel)

    def _make_model(self, folder: str) -> VoiceModel:
        """Runs in the loader's worker: the settings and calibration of that moment."""
        return VoiceModel(folder, DEVICE_RATE, self.engine_kind, 1,
                          ControlSettings.from_settings(self.settings),
                          self.state_keeper.calibration, cv_ranges=cv_ranges(self.panel.board),
                          cache_dir=self.engine_cache)

    def _notice_from_thread(self, text: str) -> None:
        """An OLED notice from a worker thread: shown by the scheduler's own thread."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.menu.show_notice, text)
        else:
            self.menu.show_notice(text)

    @property
    def settings(self):
        return self.state_keeper.settings

    @property
    def calibration(self):
        return self.state_keeper.calibration

    @property
    def state(self) -> str:
        return self.light.state

    # ---- the loop -----------------------------------------------------------------------
    async def _main(self) -> int:
        loop = self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self._stop.set)
        # On the module every page stays resident (no page fault mid-frame). A laptop's
        # virtual board does without: locking maps in every library whole (~2x the RSS).
        if not self.panel.virtual or os.environ.get("NEURORAVE_MLOCK"):
            refused = lock_memory()
            if refused:
                self.log(f"carrying on without locked memory: {refused}")
        preload_libraries()
        self.audio.start()
        self.voice.start()
        self.loader.start(loop)
        writer = StatsWriter(self.stats_path, self.stats, lambda: self.audio.output.underflows) \
            if self.stats_path else None
        notifier = _notifier()
        notifier("READY=1")
        start = time.monotonic()
        player_stop = threading.Event()
        if self.player is not None:  # patch time 0 is now; its edges come at their time
            self.player.start_ns = int(start * 1e9)
            player_thread = run_in_thread(self.player, player_stop, CV_PERIOD_S)
        last = {"draw": 0.0, "bars": 0.0, "info": 0.0}
        while not self._stop.is_set():
            now = time.monotonic()
            tick = getattr(self.panel.encoder, "tick", None)
            if tick is not None:
                tick()
            self.inputs.controls()
            self.inputs.events()
            if now - last["bars"] >= BARS_EVERY_S:
                last["bars"] = now
                self.screen.bars()
            if now - last["info"] >= INFO_EVERY_S:
                last["info"] = now
                self.report.update()
                notifier("WATCHDOG=1")
            if now - last["draw"] >= DRAW_MIN_S and self.menu.take_changed():
                last["draw"] = now
                self.screen.draw()
            if self.window is not None:
                self.window.set_cv_labels(self.menu.cv_labels())
                if not self.window.pump():
                    break
            self.state_keeper.tick(now)
            if writer is not None:
                writer.tick()
            if self.seconds is not None and now - start >= self.seconds:
                break
            # How long a turn holds the main thread (and mostly the GIL, which the
            # audio consumer also needs).
            self.report.turn_ms.add((time.monotonic() - now) * 1e3)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), TICK_S)
        notifier("STOPPING=1")
        player_stop.set()
        if self.player is not None:
            player_thread.join(0.5)  # nothing posts to the panel while it closes
        self._shutdown(writer)
        return 0

    def _shutdown(self, writer: Optional[StatsWriter]) -> None:
        self.loader.shutdown()  # first: a GPU build stopped now is no failed build
        self.voice.stop(timeout=0.5)
        self.audio.drain()  # the fade-out reaches the DAC before the stream closes
        self.report.update()
        self.audio.stop()
        self.state_keeper.save_settings()
        self.sampler.close()
        if writer is not None:
            writer.close()
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
        from neurorave.firmware.patch_settings import read
        from neurorave.hardware.patch import load_patch

        patch = load_patch(args.patch)  # a bad patch is one line before anything starts
        read(patch)
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
