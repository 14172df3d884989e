"""The GPU engine built in the background and swapped in between two frames (issue 23).

No GPU here: a second ONNX Runtime CPU engine stands in for the GPU engine, opened
slowly (or failing) by an injected opener; the swap, the state carried over, the time
limits and the fallbacks are the real ones. The build child is the real one too where a
test says so (for ort-cpu, the one kind that builds here)."""
import os
import sys
import threading
import time

import numpy as np
import pytest
from neurorave.firmware.controls import ControlSettings
from neurorave.firmware.engine_upgrade import EngineUpgrade
from neurorave.firmware.ring import AudioRing
from neurorave.firmware.stats import Stats
from neurorave.firmware.voice import ControlInputs, Voice, VoiceModel, fade, output_stage
from neurorave.models.runtime.engine_cache import EngineCache
from neurorave.models.runtime.engine_prepare import (
    PrepareResult,
    bundle_key,
    ready_kinds,
    run_prepare,
)
from neurorave.models.runtime.engines import open_engine
from toy_bundle import write_toy_bundle

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GM_NOTES = os.path.join(REPO, "models", "pretrained", "gm-notes")
VOLTS = [1.5, 2.0, -1.0, 0.0]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return write_toy_bundle(str(tmp_path_factory.mktemp("upgrade") / "toy"), frame=256,
                            name="toy")


def _model(path, seed=0):
    return VoiceModel(path, 48000, "ort-cpu", settings=ControlSettings(), seed=seed)


def _cpu_twin(model, kind):
    return open_engine(model.bundle, "ort-cpu", roles=model.roles)


def _built(*args, **kwargs):
    return PrepareResult(True, info={"assignment": {"decoder": {
        "CUDAExecutionProvider": {"nodes": 7, "time_share": 1.0}}}})


def test_a_model_moved_to_another_engine_mid_stream_plays_the_same_samples():
    """gm-notes: a prior (with its GRU state and three noise inputs) and a decoder with 27
    caches and a noise input; gates start phrases before and after the move."""
    def inputs(f):
        return ControlInputs(VOLTS, gate1_rise=(f % 15 == 3), gate2_rise=(f == 20))

    reference = _model(GM_NOTES, seed=3)
    expected = np.concatenate([reference.render(inputs(f)) for f in range(40)])
    model = _model(GM_NOTES, seed=3)
    out = [model.render(inputs(f)) for f in range(17)]
    other = open_engine(model.bundle, "ort-cpu", roles=model.roles)
    old = model.adopt_engine(other)
    assert old is not other and old.kind == "ort-cpu"
    assert model.engine is other and model.decoder is other.graphs["decoder"]
    assert model.generator.graph is other.graphs["prior"]
    out += [model.render(inputs(f)) for f in range(17, 40)]
    got = np.concatenate(out)
    assert np.abs(expected).max() > 1e-3
    assert np.array_equal(expected, got)


def _play_until(ring, done, after_s=0.25, limit_s=10.0):
    """Read the ring like a callback until `done` is set, then `after_s` more."""
    out, block = [], np.zeros(256, np.float32)
    deadline = time.monotonic() + limit_s
    finished_at = None
    while time.monotonic() < deadline:
        if finished_at is None and done.is_set():
            finished_at = time.monotonic()
        if finished_at is not None and time.monotonic() - finished_at > after_s:
            break
        if ring.available() >= 256:
            ring.read_into(block)
            out.append(block.copy())
        else:
            time.sleep(0.001)
    return np.concatenate(out)


def _expected(path, n):
    """What the voice writes for `path` with constant CVs: the first block faded in."""
    model = _model(path)
    model.reset()
    blocks, total = [], 0
    while total < n:
        block = model.render(ControlInputs(VOLTS))
        if not blocks:
            block = fade(block, True, int(0.02 * 48000))
        blocks.append(output_stage(block, 0.8))
        total += len(block)
    return np.concatenate(blocks)[:n]


def _voice(model):
    ring = AudioRing(16384)
    voice = Voice(ring, 48000, Stats(), lookahead=256, level=0.8)
    voice.rerender = False
    voice.volts = list(VOLTS)
    voice.set_model(model)
    voice.start()
    return ring, voice


def test_the_voice_swaps_to_the_built_engine_without_a_break(toy, tmp_path):
    log, notices = [], []
    model = _model(toy)
    ring, voice = _voice(model)
    cpu = model.engine

    def slow_open(m, kind):
        time.sleep(0.3)
        return _cpu_twin(m, kind)

    upgrade = EngineUpgrade(voice, voice.stats, log.append, notices.append, str(tmp_path),
                            kinds=("ort-gpu",), prepare=_built, opener=slow_open,
                            available=lambda kind: None)
    try:
        time.sleep(0.1)
        assert upgrade.start(model)
        audio = _play_until(ring, upgrade.finished)
    finally:
        voice.stop()
    assert upgrade.outcome == "upgraded ort-gpu"
    assert model.engine is not cpu and voice.engine_swaps
    swap = voice.engine_swaps[0]
    assert 0 < swap < len(audio) - 2000           # the swap is inside what was heard
    # Sample for sample what the CPU engine alone would have played: no click, no gap.
    assert np.array_equal(audio, _expected(toy, len(audio)))
    assert voice.bad_frames == 0
    assert len(log) == 1 and "now plays on" in log[0] and "decoder: CUDA 7 nodes 100%" in log[0]
    assert notices == ["GPU engine: ort-cpu"]


@pytest.mark.parametrize("how", ["slow", "fails", "out of memory"])
def test_an_engine_that_fails_or_takes_too_long_leaves_the_cpu_playing(toy, tmp_path, how):
    log, notices = [], []
    model = _model(toy)
    ring, voice = _voice(model)
    cpu = model.engine

    def bad_open(m, kind):
        if how == "slow":
            time.sleep(3)
            return _cpu_twin(m, kind)
        if how == "fails":
            raise RuntimeError("CUDA failure 999: unknown error")
        raise MemoryError()

    upgrade = EngineUpgrade(voice, voice.stats, log.append, notices.append, str(tmp_path),
                            kinds=("ort-gpu",), prepare=_built, opener=bad_open,
                            available=lambda kind: None, open_limit_s=0.4)
    try:
        assert upgrade.start(model)
        audio = _play_until(ring, upgrade.finished, after_s=0.2)
    finally:
        voice.stop()
    assert upgrade.outcome == "failed"
    assert model.engine is cpu and not voice.engine_swaps
    assert len(log) == 1 and "stays on the CPU engine" in log[0], log
    assert {"slow": "took longer than 0.4 s", "fails": "CUDA failure 999",
            "out of memory": "MemoryError"}[how] in log[0]
    assert notices == ["GPU engine failed: CPU plays"]
    assert np.array_equal(audio, _expected(toy, len(audio)))   # played on, unchanged
    assert np.abs(audio[-2000:]).max() > 0.01


def test_a_failed_build_is_remembered_and_not_retried_at_the_next_start(toy, tmp_path):
    log = []
    model = _model(toy)
    voice = Voice(AudioRing(4096), 48000, Stats(), lookahead=256)
    voice.model = model
    kill = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"]
    calls = []

    def prepare(path, kind, cache, roles, limit, cancel):
        calls.append(kind)
        return run_prepare(path, kind, cache, roles, limit, cancel, command=kill)

    def upgrade():
        u = EngineUpgrade(voice, voice.stats, log.append, lambda text: None, str(tmp_path),
                          kinds=("ort-gpu",), prepare=prepare, opener=_cpu_twin,
                          available=lambda kind: None)
        assert u.start(model)
        assert u.finished.wait(30)
        return u

    assert upgrade().outcome == "failed"
    assert calls == ["ort-gpu"] and "killed by SIGKILL (out of memory?)" in log[0]
    key = bundle_key("ort-gpu", model.bundle, model.roles)
    marker = EngineCache(str(tmp_path)).read_marker("failed", "ort-gpu", key)
    assert marker is not None and "SIGKILL" in marker["reason"]
    assert upgrade().outcome == "failed"
    assert calls == ["ort-gpu"]                      # not built again
    assert "an earlier build failed" in log[1] and "remove" in log[1]


def test_a_build_past_its_time_limit_is_stopped(toy, tmp_path):
    sleeper = [sys.executable, "-c", "import time; time.sleep(30)"]
    start = time.monotonic()
    result = run_prepare(toy, "ort-gpu", str(tmp_path), ["decoder"], 0.5, command=sleeper)
    assert not result.ok and "took longer than 0.5 s" in result.reason
    assert time.monotonic() - start < 5


def test_a_model_replaced_while_its_engine_builds_cancels_the_build(toy, tmp_path):
    log = []
    first, second = _model(toy), _model(toy)
    voice = Voice(AudioRing(4096), 48000, Stats(), lookahead=256)
    voice.model = first
    started = threading.Event()

    def prepare(path, kind, cache, roles, limit, cancel):
        started.set()
        return run_prepare(path, kind, cache, roles, limit, cancel,
                           command=[sys.executable, "-c", "import time; time.sleep(30)"])

    upgrade = EngineUpgrade(voice, voice.stats, log.append, lambda text: None, str(tmp_path),
                            kinds=("ort-gpu",), prepare=prepare, opener=_cpu_twin,
                            available=lambda kind: None)
    assert upgrade.start(first)
    assert started.wait(10)
    done = upgrade.finished
    voice.model = second
    upgrade.start(second)            # the next model: the first build is killed
    assert done.wait(5)
    upgrade.cancel()
    assert upgrade.finished.wait(10)
    assert log == [] and first.engine.kind == "ort-cpu"


def test_the_build_child_builds_reports_its_providers_and_marks_the_engine_ready(toy, tmp_path):
    """The real child process, for the one kind this machine builds (ort-cpu)."""
    result = run_prepare(toy, "ort-cpu", str(tmp_path), ["decoder"], 120)
    assert result.ok, result.reason
    assert result.info["assignment"]["decoder"]["CPUExecutionProvider"]["nodes"] == 7
    model = _model(toy)
    assert ready_kinds(model.bundle, model.roles, str(tmp_path), kinds=("ort-cpu",)) == \
        ["ort-cpu"]


def test_nothing_is_built_where_no_gpu_kind_can_run(toy, tmp_path):
    """This machine: no tensorrt, a CPU-only onnxruntime, no GPU."""
    model = _model(toy)
    voice = Voice(AudioRing(4096), 48000, Stats(), lookahead=256)
    upgrade = EngineUpgrade(voice, voice.stats, print, print, str(tmp_path))
    assert upgrade.wanted() == []
    assert not upgrade.start(model)


class _FailsOnTheVoiceThread:
    """An engine that opened (and ran its first frame) on another thread, then fails on
    the voice thread after a few calls: a CUDA context not current there."""

    def __init__(self, engine, good_calls=3):
        self.engine = engine
        self.kind, self.provider = "ort-gpu", "CUDAExecutionProvider"
        self.graphs = engine.graphs
        self.calls = 0
        run = engine.graphs["decoder"].run

        def failing_run():
            self.calls += 1
            if self.calls > good_calls:
                raise RuntimeError("CUDA error 201: invalid device context")
            run()
        engine.graphs["decoder"].run = failing_run

    def snapshot(self):
        return self.engine.snapshot()

    def restore(self, saved):
        self.engine.restore(saved)

    def describe(self):
        return "ort-gpu (CUDAExecutionProvider)"


def test_an_engine_that_fails_on_the_voice_thread_gives_the_cpu_engine_back(toy, tmp_path):
    """The swapped-in engine breaks a few frames later: the voice goes back to the CPU
    engine it kept (no silent frame), says so once, and the kind is remembered as failed
    so the next start does not try it again."""
    log, notices = [], []
    model = _model(toy)
    ring, voice = _voice(model)
    cpu = model.engine
    upgrade = EngineUpgrade(voice, voice.stats, log.append, notices.append, str(tmp_path),
                            kinds=("ort-gpu",), prepare=_built,
                            opener=lambda m, kind: _FailsOnTheVoiceThread(_cpu_twin(m, kind)),
                            available=lambda kind: None)
    voice.on_engine_failed = upgrade.engine_failed
    reverted = threading.Event()

    def watch():
        while not reverted.is_set():
            if voice.engine_reverts:
                reverted.set()
            time.sleep(0.005)
    threading.Thread(target=watch, daemon=True).start()
    try:
        time.sleep(0.1)
        assert upgrade.start(model)
        audio = _play_until(ring, reverted, after_s=0.3)   # read as the device would
    finally:
        reverted.set()
        voice.stop()
    assert upgrade.outcome == "upgraded ort-gpu" and voice.engine_reverts == 1
    assert model.engine is cpu and voice.bad_frames == 0
    assert voice.stats.engine == "ort-cpu"
    assert np.abs(audio[-2000:]).max() > 0.01           # still playing
    assert any("ort-gpu failed while playing (CUDA error 201" in line for line in log), log
    assert notices == ["GPU engine: ort-gpu", "GPU engine failed: CPU plays"]
    key = bundle_key("ort-gpu", model.bundle, model.roles)
    assert "failed while playing" in \
        EngineCache(str(tmp_path)).read_marker("failed", "ort-gpu", key)["reason"]


def test_a_build_stopped_with_the_daemon_is_no_failed_build(toy, tmp_path):
    """systemd stops the whole unit, the build child too: built again next time."""
    term = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"]
    result = run_prepare(toy, "ort-gpu", str(tmp_path), ["decoder"], 30, command=term)
    assert not result.ok and result.unavailable and "interrupted (SIGTERM)" in result.reason


def test_a_cached_engine_that_will_not_open_is_built_again_next_time(toy, tmp_path):
    log = []
    model = _model(toy)
    voice = Voice(AudioRing(4096), 48000, Stats(), lookahead=256)
    voice.model = model
    key = bundle_key("ort-gpu", model.bundle, model.roles)
    cache = EngineCache(str(tmp_path))
    cache.write_marker("ready", "ort-gpu", key, {"ok": True})

    def broken(m, kind):
        raise RuntimeError("CUDA driver version is insufficient")

    upgrade = EngineUpgrade(voice, voice.stats, log.append, lambda text: None, str(tmp_path),
                            kinds=("ort-gpu",), prepare=_built, opener=broken,
                            available=lambda kind: None)
    assert upgrade.start(model) and upgrade.finished.wait(10)
    assert upgrade.outcome == "failed" and "CUDA driver version" in log[0]
    assert cache.read_marker("ready", "ort-gpu", key) is None
    assert cache.read_marker("failed", "ort-gpu", key) is None   # a rebuild may cure it


def test_an_upgrade_cancelled_by_a_newer_one_leaves_the_newer_outcome(toy, tmp_path):
    """A model switch starts a new upgrade while the old one still builds: the old one,
    cancelled, ends later, and must not overwrite what the new one decided."""
    log = []
    release = threading.Event()

    def prepare(path, kind, folder, roles, limit, cancel):
        if path == first.path:
            release.wait(5)    # the first build: ends only after the second finished
            return PrepareResult(False, reason="cancelled")
        return _built()

    first, second = _model(toy), _model(toy, seed=1)
    second.path = first.path + "-second"
    upgrade = EngineUpgrade(Voice(AudioRing(8192), 48000, Stats(), lookahead=256), Stats(),
                            log.append, lambda text: None, str(tmp_path), kinds=("ort-gpu",),
                            prepare=prepare, opener=lambda m, kind: None,
                            available=lambda kind: None)
    assert upgrade.start(first)
    old_done = upgrade.finished
    assert upgrade.start(second)
    assert upgrade.finished.wait(5)
    decided = upgrade.outcome
    release.set()
    assert old_done.wait(5)
    assert decided is not None and upgrade.outcome == decided
