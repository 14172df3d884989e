"""Which model plays, and loading the next one in a worker while the last plays on.

At start the model the settings name plays, else the bundled default, else any other
playable one; a bundle that fails to load (a bad hash) gives way to the next while the
settings keep the player's choice, to come back once it is repaired. A model the
player chooses while another loads is loaded next. A bad bundle is refused with a
notice and the previous model plays on.
"""
import asyncio
import concurrent.futures
import os
from typing import Callable, List, Optional

from neurorave.common.errors import first_line
from neurorave.firmware.engine_upgrade import EngineUpgrade
from neurorave.firmware.menu import Menu, ModelEntry, Performance
from neurorave.firmware.state_keeper import StateKeeper
from neurorave.firmware.stats import Stats
from neurorave.firmware.status_light import StatusLight
from neurorave.firmware.voice import Voice, VoiceModel

DEFAULT_MODEL = "gm-notes"  # the bundled harmonic voice: a fresh module plays it first


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
                  if name and folder_name(m) == name and all(m is not o for o in order)]
    return order + [m for m in playable if all(m is not o for o in order)]


def first_model(models: List[ModelEntry], wanted: Optional[str]) -> Optional[ModelEntry]:
    """What plays at start (the first of `model_candidates`)."""
    candidates = model_candidates(models, wanted)
    return candidates[0] if candidates else None


def folder_name(entry: ModelEntry) -> str:
    return os.path.basename(entry.folder.rstrip("/"))


class ModelLoader:
    """Loads models in one worker thread and hands each to the voice when ready."""

    def __init__(self, folder: str, models: List[ModelEntry], state: StateKeeper,
                 voice: Voice, menu: Menu, stats: Stats, light: StatusLight,
                 log: Callable[[str], None], make_model: Callable[[str], VoiceModel],
                 upgrade: Optional[EngineUpgrade] = None):
        self.folder = folder
        self.models = models
        self.state = state
        self.voice = voice
        self.menu = menu
        self.stats = stats
        self.light = light
        self.log = log
        self.make_model = make_model  # runs in the worker: folder -> VoiceModel
        self.worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="loader")
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self.loading: Optional[str] = None
        self.queued: Optional[str] = None
        self.current: Optional[str] = None  # the folder name of the model last loaded
        self.model_setting: Optional[str] = state.settings.get("model")  # the player's choice
        self.fallbacks: List[ModelEntry] = []  # start-up: the next models to try
        self.loading_at_start = False  # chosen by the start-up order, not the player
        # engine_upgrade.EngineUpgrade: a model that plays on the CPU engine gets its GPU
        # engine built in the background and swapped in (None: no upgrades).
        self.upgrade = upgrade

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Load the first playable model, or say there is none."""
        self.loop = loop
        first = self._first()
        if first is not None:
            self.load(first.folder, at_start=True)
            return
        why = (f"no playable model in {self.folder}" if not self.models
               else f"no playable model: {self.models[0].error}")
        self.log(why)
        self.stats.error(why)
        self.menu.set_performance(Performance("", (), why))
        self.light.set("error")

    def _first(self) -> Optional[ModelEntry]:
        """The model to load at start; the others playable wait in `fallbacks`."""
        wanted = self.model_setting
        candidates = model_candidates(self.models, wanted)
        if not candidates:
            return None
        first, self.fallbacks = candidates[0], candidates[1:]
        if wanted and folder_name(first) != wanted:
            named = [m for m in self.models if folder_name(m) == wanted]
            why = named[0].error if named else f"not in {self.folder}"
            self._say(f"model {wanted} (named in the settings): {why}; "
                      f"trying {folder_name(first)} instead, the settings keep {wanted}")
        return first

    def _say(self, text: str) -> None:
        self.log(text)
        self.stats.error(text)

    def load(self, folder: str, at_start: bool = False) -> None:
        if self.loading is not None:
            self.queued = folder  # the player's choice meanwhile: loaded next
            return
        self.loading = folder
        self.loading_at_start = at_start
        self.light.set("loading")
        assert self.loop is not None
        future = self.loop.run_in_executor(self.worker, self.make_model, folder)
        future.add_done_callback(lambda f: self._loaded(folder, f))

    def _loaded(self, folder: str, future: "asyncio.Future[VoiceModel]") -> None:
        self.loading = None
        self._take(folder, future)
        if self.queued is not None and self.loading is None:
            queued, self.queued = self.queued, None
            if queued != folder:
                self.load(queued)

    def _take(self, folder: str, future: "asyncio.Future[VoiceModel]") -> None:
        try:
            model = future.result()
        except Exception as exc:  # noqa: BLE001 - any bad bundle: say why, keep playing
            self._refuse(folder, first_line(exc))
            return
        settings = self.state.settings
        self.voice.set_model(model)
        if self.upgrade is not None:
            self.upgrade.start(model)  # cancels one still building for the last model
        self.current = os.path.basename(folder.rstrip("/"))
        self.menu.playing = self.current
        self.fallbacks = []
        if not self.loading_at_start:  # the player chose it in the menu
            self.model_setting = settings["model"] = self.current
        elif self.model_setting is None:
            # Nothing chosen yet: name what plays, but that alone is no change to write.
            self.model_setting = settings["model"] = self.current
            self.state.known_as_saved("model")
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
        self.light.set("playing")

    def _refuse(self, folder: str, reason: str) -> None:
        text = f"model {os.path.basename(folder)}: {reason}"
        self.menu.show_notice(f"load failed: {reason}")
        # The menu may have named it in the settings: the player's last good choice
        # stays (one that failed at start comes back once its bundle is repaired).
        self.state.settings["model"] = self.model_setting
        self.state.changed()
        if self.current is None and self.fallbacks:
            # Nothing plays yet: the next playable model rather than silence.
            following = self.fallbacks.pop(0)
            keep = f", the settings keep {self.model_setting}" if self.model_setting else ""
            self._say(f"{text}; trying {folder_name(following)} instead{keep}")
            self.load(following.folder, at_start=True)
            return
        self._say(text)
        self.light.set("playing" if self.current is not None else "error")
        if self.current is None:
            self.menu.set_performance(Performance("", (), f"no model: {reason}"))

    def shutdown(self) -> None:
        if self.upgrade is not None:
            self.upgrade.cancel()
        self.worker.shutdown(wait=False)
