"""GPU engine caches, keys and the engine's choice, without a GPU (issue 23).

TensorRT cannot be installed here (REFERENCES.md): the native engine's cache logic runs
with its build and deserialise steps stood in for; ONNX Runtime's TensorRT provider
options are checked as the options handed over; which provider runs each node is read
from a real profiled ONNX Runtime session (CPU)."""
import os

import numpy as np
import pytest
from neurorave.models.runtime import engine_prepare, trt_engine
from neurorave.models.runtime.bundle import load_bundle
from neurorave.models.runtime.engine_cache import (
    EngineCache,
    GpuInfo,
    default_cache_dir,
    engine_key,
)
from neurorave.models.runtime.engines import EngineUnavailable, open_engine
from neurorave.models.runtime.ort_providers import (
    node_providers,
    open_session,
    provider_list,
    summarise_profile,
    trt_provider_options,
)
from toy_bundle import write_toy_bundle

NANO = GpuInfo("NVIDIA Tegra X1", "5.3", "test")
ORIN = GpuInfo("Orin", "8.7", "test")
SHA = "ab" * 32


@pytest.fixture
def bundle(tmp_path):
    return load_bundle(write_toy_bundle(str(tmp_path / "toy")))


def test_every_field_of_the_key_names_another_engine(tmp_path):
    cache = EngineCache(str(tmp_path))
    base = engine_key(SHA, "tensorrt", "8.2.1.8", NANO, "fp16")
    variants = [engine_key("cd" * 32, "tensorrt", "8.2.1.8", NANO, "fp16"),
                engine_key(SHA, "tensorrt", "10.3.0", NANO, "fp16"),
                engine_key(SHA, "tensorrt", "8.2.1.8", ORIN, "fp16"),
                engine_key(SHA, "tensorrt", "8.2.1.8", GpuInfo("NVIDIA Tegra X1", "6.2", "t"),
                           "fp16"),
                engine_key(SHA, "tensorrt", "8.2.1.8", NANO, "fp32")]
    paths = {cache.plan_path("decoder", k) for k in [base] + variants}
    assert len(paths) == 6
    assert all(os.path.dirname(p) == str(tmp_path / "trt") for p in paths)
    assert os.path.basename(cache.plan_path("decoder", base)).startswith("decoder-abababababab-")
    # The timing cache follows TensorRT's version and the GPU, not the model.
    assert cache.timing_path(base) == cache.timing_path(variants[0])
    assert cache.timing_path(base) != cache.timing_path(variants[2])


def test_a_stored_plan_comes_back_and_a_damaged_one_never_does(tmp_path):
    cache = EngineCache(str(tmp_path))
    key = engine_key(SHA, "tensorrt", "8.2.1.8", NANO, "fp16")
    assert cache.load_plan("decoder", key) is None
    path = cache.store_plan("decoder", key, b"plan bytes" * 100)
    assert cache.load_plan("decoder", key) == b"plan bytes" * 100
    # One byte changed (a torn write, a hand edit): refused and removed.
    with open(path, "r+b") as handle:
        handle.write(b"X")
    assert cache.load_plan("decoder", key) is None
    assert not os.path.exists(path)
    # A sidecar naming another key (copied over from another module): refused.
    cache.store_plan("decoder", key, b"plan")
    other = dict(key, runtime_version="8.0.1")
    os.replace(path[:-5] + ".json", cache.plan_path("decoder", other)[:-5] + ".json")
    os.replace(path, cache.plan_path("decoder", other))
    assert cache.load_plan("decoder", other) is None
    # A plan without its sidecar, and a sidecar that is not JSON.
    cache.store_plan("decoder", key, b"plan")
    os.unlink(path[:-5] + ".json")
    assert cache.load_plan("decoder", key) is None
    cache.store_plan("decoder", key, b"plan")
    with open(path[:-5] + ".json", "w") as handle:
        handle.write("{torn")
    assert cache.load_plan("decoder", key) is None


class _FakeTrt:
    __version__ = "8.2.1.8"


class _FakeRuntime:
    def __init__(self):
        self.loaded = []

    def deserialize_cuda_engine(self, plan):
        self.loaded.append(plan)
        return None if plan.startswith(b"bad") else ("engine", plan)


def test_the_native_engine_builds_once_then_loads_and_rebuilds_what_will_not_load(
        bundle, tmp_path, monkeypatch):
    """trt_engine.load_or_build with TensorRT's build and deserialise stood in for."""
    runtime = _FakeRuntime()
    monkeypatch.setattr(trt_engine._Logger, "get", classmethod(lambda cls, trt: (None, runtime)))
    builds = []

    def build(trt, logger, spec, fp16, timing):
        builds.append(timing)
        return b"plan-%d" % len(builds), b"timing-%d" % len(builds), []

    monkeypatch.setattr(trt_engine, "build_plan", build)
    spec, cache, log = bundle.graphs["decoder"], EngineCache(str(tmp_path)), []
    engine, built, _ = trt_engine.load_or_build(_FakeTrt(), spec, cache, NANO, True, log.append)
    assert built and engine == ("engine", b"plan-1") and builds == [b""]
    engine, built, _ = trt_engine.load_or_build(_FakeTrt(), spec, cache, NANO, True, log.append)
    assert not built and engine == ("engine", b"plan-1") and len(builds) == 1
    # Another GPU: another engine, built with the timing cache of *that* GPU (none yet).
    trt_engine.load_or_build(_FakeTrt(), spec, cache, ORIN, True, log.append)
    assert builds[-1] == b""
    # A plan that TensorRT refuses (another TensorRT wrote it under this name): rebuilt,
    # with the timing cache the first build left, and one log line.
    key = trt_engine.trt_key(_FakeTrt(), spec, NANO, True)
    cache.store_plan("decoder", key, b"bad plan")
    engine, built, _ = trt_engine.load_or_build(_FakeTrt(), spec, cache, NANO, True, log.append)
    assert built and engine == ("engine", b"plan-3") and builds[-1] == b"timing-1"
    assert log == ["trt: the cached decoder engine would not load: rebuilt"]
    assert cache.load_plan("decoder", key) == b"plan-3"


def test_the_native_engine_says_why_it_cannot_run_here(bundle):
    with pytest.raises(EngineUnavailable, match="trt: the tensorrt Python package is not "
                                                "installed"):
        open_engine(bundle, "trt")


def test_the_tensorrt_provider_gets_fp16_and_both_caches_for_its_version():
    old = trt_provider_options("1.11.0", "/e", "/t")                 # JetPack 4.6
    assert old["trt_fp16_enable"] == "True" and old["trt_engine_cache_enable"] == "True"
    assert old["trt_engine_cache_path"] == "/e" and "trt_timing_cache_enable" not in old
    mid = trt_provider_options("1.14.1", "/e", "/t")
    assert mid["trt_timing_cache_enable"] == "True" and "trt_timing_cache_path" not in mid
    new = trt_provider_options("1.20.0", "/e", "/t", fp16=False)
    assert new["trt_timing_cache_path"] == "/t" and new["trt_fp16_enable"] == "False"
    assert int(new["trt_max_workspace_size"]) <= 1 << 30


class _FakeOrt:
    __version__ = "1.16.3"


def test_provider_order_and_cache_folders(bundle, tmp_path, monkeypatch):
    from neurorave.models.runtime import ort_providers

    monkeypatch.setattr(ort_providers, "gpu_info", lambda: NANO)
    wanted = ["TensorrtExecutionProvider", "CUDAExecutionProvider"]
    spec = bundle.graphs["decoder"]
    providers, engine_dir = provider_list(_FakeOrt(), "ort-gpu", wanted,
                                          wanted + ["CPUExecutionProvider"], spec,
                                          str(tmp_path), True)
    assert [p if isinstance(p, str) else p[0] for p in providers] == wanted + [
        "CPUExecutionProvider"]
    options = providers[0][1]
    assert options["trt_engine_cache_path"] == engine_dir and os.path.isdir(engine_dir)
    assert engine_dir.startswith(str(tmp_path / "ort-trt" / spec.sha256[:12]))
    assert os.path.isdir(options["trt_timing_cache_path"])
    # Only CUDA offered (a build without TensorRT): no cache folder at all.
    providers, engine_dir = provider_list(_FakeOrt(), "ort-gpu", wanted,
                                          ["CUDAExecutionProvider", "CPUExecutionProvider"],
                                          spec, str(tmp_path / "b"), True)
    assert providers == ["CUDAExecutionProvider", "CPUExecutionProvider"] and engine_dir is None
    assert not (tmp_path / "b").exists()


def test_a_damaged_provider_cache_is_emptied_and_the_session_opened_again(tmp_path):
    engine_dir = tmp_path / "ort-trt" / "abc"
    engine_dir.mkdir(parents=True)
    (engine_dir / "TensorrtExecutionProvider_TRTKernel.engine").write_bytes(b"torn")
    tries = []

    class Ort:
        @staticmethod
        def InferenceSession(path, sess_options, providers):
            tries.append(sorted(os.listdir(engine_dir)))
            if os.listdir(engine_dir):
                raise RuntimeError("TensorRT EP could not deserialize engine from cache")
            return "session"

    assert open_session(Ort, "m.onnx", None, [], str(engine_dir)) == "session"
    assert tries == [["TensorrtExecutionProvider_TRTKernel.engine"], []]


def test_which_provider_runs_each_node_comes_from_a_profiled_run(bundle):
    assignment = node_providers(bundle.graphs["decoder"], ["CPUExecutionProvider"])
    assert assignment == {"CPUExecutionProvider": {"nodes": 7, "time_share": 1.0}}
    events = [
        {"cat": "Node", "name": "TRTKernel_graph_0_kernel_time", "dur": 90,
         "args": {"provider": "TensorrtExecutionProvider"}},
        {"cat": "Node", "name": "Slice_2_kernel_time", "dur": 10,
         "args": {"provider": "CPUExecutionProvider"}},
        {"cat": "Node", "name": "Slice_2_fence_before", "dur": 5,
         "args": {"provider": "CPUExecutionProvider"}},
        {"cat": "Session", "name": "model_run", "dur": 200, "args": {}},
    ]
    assert summarise_profile(events) == {
        "TensorrtExecutionProvider": {"nodes": 1, "time_share": 0.9},
        "CPUExecutionProvider": {"nodes": 1, "time_share": 0.1}}


def test_a_ready_engine_is_not_opened_at_load_but_swapped_in_later(bundle, tmp_path,
                                                                   monkeypatch):
    """A marker says ort-gpu was built here: the model still opens on the CPU at load
    (the firmware swaps the GPU engine in, keeping the CPU one until it has proved
    itself on the voice thread), with a note saying so."""
    monkeypatch.setattr(engine_prepare, "why_not", lambda kind: None)
    roles = ["decoder"]
    key = engine_prepare.bundle_key("ort-gpu", bundle, roles)
    cache = EngineCache(str(tmp_path))
    cache.write_marker("ready", "ort-gpu", key, {"ok": True})
    assert engine_prepare.ready_kinds(bundle, roles, str(tmp_path)) == ["ort-gpu"]
    engine = engine_prepare.open_ready(bundle, "auto", 1, roles, str(tmp_path))
    assert engine.kind == "ort-cpu"
    assert any(n.startswith("ort-gpu built here before") for n in engine.notes), engine.notes
    assert cache.read_marker("ready", "ort-gpu", key) is not None


def test_auto_with_a_cache_opens_the_cpu_now_and_says_why_not_the_gpu(bundle, tmp_path):
    engine = engine_prepare.open_ready(bundle, "auto", 1, ["decoder"], str(tmp_path))
    assert engine.kind == "ort-cpu"
    assert [n.split(":")[0] for n in engine.notes] == ["trt", "ort-gpu"]
    np.testing.assert_array_equal(engine.graphs["decoder"].outputs["audio"], 0.0)


def test_the_cache_folder_is_engines_in_the_state_directory(tmp_path, monkeypatch):
    from neurorave.firmware.state_files import default_state_dir

    monkeypatch.delenv("NEURORAVE_ENGINE_CACHE", raising=False)
    monkeypatch.setenv("NEURORAVE_STATE_DIR", str(tmp_path / "state"))
    assert default_cache_dir() == os.path.join(default_state_dir(), "engines")
    monkeypatch.delenv("NEURORAVE_STATE_DIR")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == os.path.join(default_state_dir(), "engines")
    monkeypatch.setenv("NEURORAVE_ENGINE_CACHE", str(tmp_path / "elsewhere"))
    assert default_cache_dir() == str(tmp_path / "elsewhere")


def test_doctor_says_which_engines_run_here_and_lists_failed_builds(tmp_path, capsys):
    from neurorave.firmware.cli import main as cli_main

    key = engine_key(SHA, "tensorrt", "8.2.1.8", NANO, "fp16")
    path = EngineCache(str(tmp_path)).write_marker("failed", "trt", key, {
        "reason": "the build was killed by SIGKILL (out of memory?)", "bundle": "/m/gm-notes"})
    assert cli_main(["doctor", "--cache", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(":")[0] for line in lines[:3]] == ["trt", "ort-gpu", "ort-cpu"]
    # This machine: no tensorrt, a CPU-only onnxruntime; each says why, in one line.
    assert lines[0].startswith("trt: no - the tensorrt Python package is not installed")
    assert lines[1].startswith("ort-gpu: no - onnxruntime") and "--ort-wheel" in lines[1]
    assert lines[2].startswith("ort-cpu: yes")
    assert lines[3].startswith(f"engine cache: {tmp_path}") and "1 failed" in lines[3]
    assert "SIGKILL" in lines[4] and path in lines[4]


def test_engines_of_onnx_runtimes_tensorrt_provider_are_keyed_by_the_tensorrt_version(
        bundle, monkeypatch):
    """ONNX Runtime's TensorRT provider builds with whatever TensorRT it finds: a JetPack
    upgrade that changes TensorRT alone must not reuse the old engines. The version is
    read without importing tensorrt (no import in the daemon while it plays)."""
    import sys

    from neurorave.models.runtime import engine_cache

    assert engine_cache.trt_version_text(8201) == "8.2.1"     # JetPack 4.6
    assert engine_cache.trt_version_text(100300) == "10.3.0"  # TensorRT 10 numbering
    monkeypatch.setattr(engine_cache, "_TRT_MEMO", [])
    assert engine_cache.tensorrt_version() is None  # not installed on this machine
    assert "tensorrt" not in sys.modules
    keys = []
    for version in ("8.2.1", "8.4.1"):
        monkeypatch.setattr(engine_cache, "_TRT_MEMO", [version])
        keys.append(engine_prepare.bundle_key("ort-gpu", bundle, ["decoder"]))
    assert keys[0] != keys[1] and keys[0]["runtime_version"].endswith("+tensorrt-8.2.1")
    assert engine_prepare.bundle_key("trt", bundle, ["decoder"])["runtime_version"] == "8.4.1"
