"""The GPU engine arrives while the CPU engine plays: built in the background, swapped in
between two frames without a click.

A model that loads with `--engine auto` plays at once on the CPU engine, and
`EngineUpgrade.start` runs, on a worker thread, for each GPU kind this machine may run
(trt, then ort-gpu):
1. build, unless an earlier start built it (then it comes from the cache, well under a
   second for TensorRT): a child process compiles the engines into the cache folder
   (engines/ in the state directory; models/runtime/engine_prepare.py), at most
   BUILD_LIMIT_S; a child, so that running out of memory takes nothing else down (a
   child stopped with the daemon is no failure: it builds again at the next start);
2. open: the same kind in this process, from the cache, at most OPEN_LIMIT_S;
3. swap: the voice thread takes it at the next frame boundary, carrying every graph's
   streaming state and noise generator over (`Voice.offer_engine`,
   `VoiceModel.adopt_engine`): the next frame is the one the CPU would have made.
A kind that fails (its build failed, ran out of memory or took too long; it would not
open) gives way to the next; when none succeeds the CPU engine plays on, with one log
line and one OLED notice. A failed build is remembered in the cache folder and not
tried again at the next start (`neurorave doctor` names the file to remove to retry).
A model replaced meanwhile cancels its upgrade (the child is killed). Every GPU engine
comes through the swap, never straight at load: the voice keeps the CPU engine until
the GPU one has rendered a while on its own thread, and goes back to it if the GPU one
fails there (`engine_failed`: remembered like a failed build).
"""
import os
import threading
import time
from typing import Any, Callable, List, Optional, Sequence

from neurorave.common.errors import first_line
from neurorave.firmware.stats import Stats
from neurorave.firmware.voice import Voice, VoiceModel
from neurorave.models.runtime.engine_cache import EngineCache
from neurorave.models.runtime.engine_prepare import (
    GPU_KINDS,
    PrepareResult,
    bundle_key,
    describe,
    run_prepare,
    why_not,
)

# A first TensorRT build of a RAVE-sized decoder on a Nano takes minutes; past this it
# is stopped (NEURORAVE_ENGINE_BUILD_LIMIT_S overrides).
BUILD_LIMIT_S = 1200.0
# Opening a built engine from the cache: TensorRT well under a second, ONNX Runtime's
# providers a few seconds (CUDA's own start on a Nano included).
OPEN_LIMIT_S = 60.0
# The voice takes an offered engine at its next frame; a voice that has stopped never.
TAKE_LIMIT_S = 5.0

Prepare = Callable[..., PrepareResult]
Opener = Callable[[VoiceModel, str], Any]


def _open_gpu(model: VoiceModel, kind: str) -> Any:
    from neurorave.models.runtime.engines import open_engine

    return open_engine(model.bundle, kind, 1, roles=model.roles, cache_dir=model.cache_dir)


class EngineUpgrade:
    def __init__(self, voice: Voice, stats: Stats, log: Callable[[str], None],
                 notify: Callable[[str], None], cache_dir: str,
                 kinds: Sequence[str] = GPU_KINDS, prepare: Prepare = run_prepare,
                 opener: Opener = _open_gpu, available: Callable[[str], Optional[str]] = why_not,
                 build_limit_s: Optional[float] = None, open_limit_s: float = OPEN_LIMIT_S):
        self.voice = voice
        self.stats = stats
        self.log = log
        self.notify = notify      # the menu's notice (the OLED), called from the worker
        self.cache = EngineCache(cache_dir)
        self.kinds = tuple(kinds)
        self.prepare = prepare
        self.opener = opener
        self.available = available
        if build_limit_s is None:
            build_limit_s = float(os.environ.get("NEURORAVE_ENGINE_BUILD_LIMIT_S", BUILD_LIMIT_S))
        self.build_limit_s = build_limit_s
        self.open_limit_s = open_limit_s
        self._cancel = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.outcome: Optional[str] = None  # "upgraded kind", "failed", "cancelled", "nothing"
        self.finished = threading.Event()

    def wanted(self) -> List[str]:
        """The GPU kinds worth building here (a quick look: no GPU, none)."""
        return [k for k in self.kinds if self.available(k) is None]

    def start(self, model: VoiceModel) -> bool:
        """Upgrade `model` (playing on the CPU engine) in the background; False when there
        is nothing to try here. A previous upgrade still running is cancelled."""
        self.cancel()
        kinds = self.wanted()
        if model.engine.kind != "ort-cpu" or not kinds:
            return False
        self._cancel = cancel = threading.Event()
        self.finished = done = threading.Event()
        self.outcome = None
        self._thread = threading.Thread(target=self._work, args=(model, kinds, cancel, done),
                                        name="engine-upgrade", daemon=True)
        self._thread.start()
        return True

    def cancel(self) -> None:
        self._cancel.set()

    # ---- the worker -------------------------------------------------------------------
    def _work(self, model: VoiceModel, kinds: List[str], cancel: threading.Event,
              done: threading.Event) -> None:
        outcome = "failed"
        try:
            outcome = self._upgrade(model, kinds, cancel)
        except Exception as exc:  # noqa: BLE001 - never takes the daemon down
            self._failed(model, [f"{type(exc).__name__}: {exc}"])
        finally:
            # A run cancelled by a newer `start` finishes on its own time: its outcome
            # must not overwrite the newer run's.
            if done is self.finished:
                self.outcome = outcome
            done.set()

    def _upgrade(self, model: VoiceModel, kinds: List[str], cancel: threading.Event) -> str:
        failures: List[str] = []
        start = time.monotonic()
        for kind in kinds:
            key = bundle_key(kind, model.bundle, model.roles)
            failed = self.cache.read_marker("failed", kind, key) if key else None
            if failed is not None:
                failures.append(f"{kind}: an earlier build failed ({failed.get('reason')}); "
                                f"remove {self.cache.marker_path('failed', kind, key or {})} "
                                "to try again")
                continue
            ready = self.cache.read_marker("ready", kind, key) if key else None
            if ready is None:
                result = self.prepare(model.path, kind, self.cache.folder, model.roles,
                                      self.build_limit_s, cancel)
                if cancel.is_set():
                    return "cancelled"
                if not result.ok:
                    failures.append(f"{kind}: {result.reason}")
                    if key is not None and not result.unavailable:
                        self.cache.write_marker("failed", kind, key, {
                            "reason": result.reason, "seconds": round(result.seconds, 1),
                            "bundle": model.path, "when": time.strftime("%Y-%m-%d %H:%M:%S")})
                    continue
                ready = result.info
            engine, why = self._open(model, kind)
            if cancel.is_set():
                return "cancelled"
            if engine is None:
                failures.append(f"{kind}: {why}")
                if key is not None:  # a cached engine that will not open is built anew
                    self.cache.clear_marker("ready", kind, key)
                continue
            offer = self.voice.offer_engine(model, engine)
            if not offer.done.wait(TAKE_LIMIT_S) or not offer.taken:
                return "cancelled"  # another model plays now (or the voice stopped)
            self.stats.engine, self.stats.provider = engine.kind, engine.provider
            assignment = ready.get("assignment") if isinstance(ready, dict) else None
            runs = f"; {describe(assignment)}" if assignment else ""
            self.log(f"engine: {model.name} now plays on {engine.describe()}, swapped in "
                     f"without a break {time.monotonic() - start:.1f} s after it loaded{runs}")
            self.notify(f"GPU engine: {engine.kind}")
            return f"upgraded {kind}"
        if failures:
            self._failed(model, failures)
            return "failed"
        return "nothing"

    def _open(self, model: VoiceModel, kind: str):
        """(engine, None) or (None, why), within the time limit (a thread that overruns
        is left to finish on its own; its engine is dropped)."""
        box: List[Any] = []

        def run() -> None:
            try:
                box.append((self.opener(model, kind), None))
            except Exception as exc:  # noqa: BLE001 - any failure: the CPU plays on
                box.append((None, first_line(exc) if str(exc) else type(exc).__name__))

        worker = threading.Thread(target=run, name=f"engine-open-{kind}", daemon=True)
        worker.start()
        worker.join(self.open_limit_s)
        if not box:
            return None, f"opening the built engine took longer than {self.open_limit_s:g} s"
        return box[0]

    def engine_failed(self, model: VoiceModel, kind: str, why: str) -> None:
        """The voice went back to the CPU engine: the GPU one failed on its thread.
        Remembered like a failed build (not tried again until its file is removed)."""
        key = bundle_key(kind, model.bundle, model.roles)
        if key is not None:
            self.cache.clear_marker("ready", kind, key)
            self.cache.write_marker("failed", kind, key, {
                "reason": f"failed while playing: {why}", "bundle": model.path,
                "when": time.strftime("%Y-%m-%d %H:%M:%S")})
        self._failed(model, [f"{kind} failed while playing ({why}), back on the CPU engine"])

    def _failed(self, model: VoiceModel, failures: List[str]) -> None:
        text = f"engine: {model.name} stays on the CPU engine: " + "; ".join(failures)
        self.log(text)
        self.stats.error(text)
        self.notify("GPU engine failed: CPU plays")
