"""ONNX Runtime engine: frame-by-frame streaming equals the offline computation."""
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
from neurorave.models.runtime.bundle import load_bundle
from neurorave.models.runtime.engines import EngineUnavailable, open_engine
from toy_bundle import offline_decode, write_toy_bundle

FRAMES = 80


@pytest.fixture
def engine(tmp_path):
    bundle = load_bundle(write_toy_bundle(str(tmp_path / "toy")))
    return open_engine(bundle, "ort-cpu")


def _stream(engine, z, attributes):
    decoder = engine.graphs["decoder"]
    blocks = []
    for t in range(z.shape[1]):
        decoder.inputs["z"][0, :, 0] = z[:, t]
        decoder.inputs["attributes"][0, :, 0] = attributes[:, t]
        decoder.run()
        blocks.append(decoder.outputs["audio"].reshape(-1).copy())
    return np.concatenate(blocks)


def test_streaming_equals_offline(engine):
    rng = np.random.default_rng(1)
    z = rng.standard_normal((4, FRAMES)).astype(np.float32)
    attributes = rng.uniform(0, 1, (2, FRAMES)).astype(np.float32)
    streamed = _stream(engine, z, attributes)
    assert np.max(np.abs(streamed - offline_decode(z, attributes))) <= 1e-4


def test_reset_reproduces_first_output_exactly(engine):
    rng = np.random.default_rng(2)
    z = rng.standard_normal((4, 10)).astype(np.float32)
    attributes = rng.uniform(0, 1, (2, 10)).astype(np.float32)
    first = _stream(engine, z, attributes)
    engine.reset()
    again = _stream(engine, z, attributes)
    assert np.array_equal(first, again)
    # Without a reset the state carries over, so the output differs.
    assert not np.array_equal(first, _stream(engine, z, attributes))


def test_outputs_are_preallocated_and_reused(engine):
    decoder = engine.graphs["decoder"]
    audio = decoder.outputs["audio"]
    for _ in range(5):
        decoder.run()
    assert decoder.outputs["audio"] is audio
    tracemalloc.start()
    decoder.run()
    before = tracemalloc.take_snapshot()
    for _ in range(300):
        decoder.run()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert grown < 4096, f"the hot loop allocated {grown} bytes over 300 calls"


def test_auto_picks_cpu_here_and_says_why(tmp_path):
    bundle = load_bundle(write_toy_bundle(str(tmp_path / "toy")))
    engine = open_engine(bundle, "auto")
    assert engine.kind == "ort-cpu"
    assert engine.provider == "CPUExecutionProvider"
    assert len(engine.notes) == 2
    assert engine.notes[0].startswith("trt:") and engine.notes[1].startswith("ort-gpu:")
    assert engine.load_seconds > 0


def test_gpu_kind_never_falls_back_silently(tmp_path):
    import onnxruntime
    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has a CUDA provider")  # covered by the gpu-marked test
    bundle = load_bundle(write_toy_bundle(str(tmp_path / "toy")))
    with pytest.raises(EngineUnavailable, match="ort-gpu"):
        open_engine(bundle, "ort-gpu")


@pytest.mark.gpu
def test_gpu_engine_matches_cpu(tmp_path):
    bundle = load_bundle(write_toy_bundle(str(tmp_path / "toy")))
    cpu, gpu = open_engine(bundle, "ort-cpu"), open_engine(bundle, "ort-gpu")
    assert gpu.provider in ("TensorrtExecutionProvider", "CUDAExecutionProvider")
    rng = np.random.default_rng(3)
    z = rng.standard_normal((4, 16)).astype(np.float32)
    attributes = rng.uniform(0, 1, (2, 16)).astype(np.float32)
    assert np.max(np.abs(_stream(cpu, z, attributes) - _stream(gpu, z, attributes))) < 1e-2


def test_preload_imports_the_inference_library_before_any_model():
    # The daemon calls this before the audio starts: ONNX Runtime's first import holds
    # the GIL long enough to starve a playing feed.
    code = ("import sys\nfrom neurorave.models.runtime.engines import preload_libraries\n"
            "before = 'onnxruntime' in sys.modules\npreload_libraries()\n"
            "print(before, 'onnxruntime' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["False", "True"]


def test_a_call_raises_nothing_on_the_way(engine):
    """onnxruntime 1.32's `run_with_iobinding` looked up an unset run option on every call;
    the exception pybind11 raised and the wrapper caught cost 45 us a call (an empty
    graph's whole cost is 6 us). No exception may be raised, even caught, in a call."""
    decoder = engine.graphs["decoder"]
    raised = []

    def trace(frame, event, arg):
        if event == "exception":
            raised.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {arg[0].__name__}")
        return trace

    decoder.run()
    sys.settrace(trace)
    try:
        for _ in range(3):
            decoder.fill_noise()
            decoder.run()
    finally:
        sys.settrace(None)
    assert raised == [], raised

