"""The native TensorRT runner's own logic (trt_engine.TrtGraphRunner) against stand-ins
for a TensorRT engine and GPU memory: TensorRT cannot be installed here (REFERENCES.md).

The stand-in engine runs the graph with ONNX Runtime on the CPU, reading and writing
"device" buffers by the addresses the runner hands it, in TensorRT 10's tensor API and
in TensorRT 8.2's bindings API. What this checks: the runner's double-buffered device
states, its host copies, snapshot/restore across engine kinds, reset, the noise; not
TensorRT itself (its first run is tools/gpu-check.sh on a Jetson)."""
import os

import numpy as np
import onnxruntime as ort
import pytest
from neurorave.models.runtime.bundle import load_bundle
from neurorave.models.runtime.engines import NOISE_SEED, open_engine
from neurorave.models.runtime.trt_engine import TrtGraphRunner, TrtUnavailable

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GM_NOTES = os.path.join(REPO, "models", "pretrained", "gm-notes")


class Device:
    name, stream_handle = "stand-in", 7

    def __init__(self):
        self.memory, self.next = {}, 4096

    def ensure_context(self):
        pass

    def malloc(self, nbytes):
        self.next += nbytes + 256
        self.memory[self.next] = np.full(nbytes // 4, np.nan, np.float32)  # uninitialised
        return self.next

    def free(self, pointer):
        del self.memory[pointer]

    def to_device(self, pointer, array):
        self.memory[pointer][...] = array.reshape(-1)

    def to_host(self, array, pointer):
        array[...] = self.memory[pointer].reshape(array.shape)

    def zero(self, pointer, nbytes):
        self.memory[pointer][...] = 0.0

    def sync(self):
        pass


class Trt:
    __version__ = "10.0.0-stand-in"
    float32 = "float32"

    class TensorIOMode:
        INPUT, OUTPUT = "input", "output"


class Engine10:
    """TensorRT 10's names: tensors by name, set_tensor_address, execute_async_v3."""

    def __init__(self, spec, device):
        self.session = ort.InferenceSession(spec.path, providers=["CPUExecutionProvider"])
        self.device = device
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.shapes = {t.name: tuple(t.shape) for t in self.session.get_inputs()
                       + self.session.get_outputs()}
        self.num_io_tensors = len(self.inputs) + len(self.outputs)
        self.num_layers = len(self.session.get_outputs())

    def get_tensor_name(self, i):
        return (self.inputs + self.outputs)[i]

    def get_tensor_mode(self, name):
        return Trt.TensorIOMode.INPUT if name in self.inputs else Trt.TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name):
        return Trt.float32

    def create_execution_context(self):
        return Context10(self)

    def execute(self, address):
        memory = self.device.memory
        feed = {n: memory[address[n]].reshape(self.shapes[n]).copy() for n in self.inputs}
        for name, value in zip(self.outputs, self.session.run(self.outputs, feed)):
            memory[address[name]][...] = value.reshape(-1)


class Context10:
    def __init__(self, engine):
        self.engine, self.address = engine, {}

    def set_input_shape(self, name, shape):
        assert tuple(shape) == self.engine.shapes[name]

    def set_tensor_address(self, name, pointer):
        self.address[name] = pointer

    def execute_async_v3(self, stream):
        assert stream == Device.stream_handle
        self.engine.execute(self.address)
        return True


class Engine8(Engine10):
    """TensorRT 8.2's names: bindings by index, execute_async_v2."""

    def __init__(self, spec, device):
        super().__init__(spec, device)
        self.names = self.inputs + self.outputs
        self.num_bindings = len(self.names)
        del self.num_io_tensors

    def __getattribute__(self, name):
        if name in ("num_io_tensors", "get_tensor_name", "get_tensor_mode", "get_tensor_dtype"):
            raise AttributeError(name)
        return super().__getattribute__(name)

    def get_binding_name(self, i):
        return self.names[i]

    def get_binding_index(self, name):
        return self.names.index(name)

    def binding_is_input(self, i):
        return self.names[i] in self.inputs

    def get_binding_dtype(self, i):
        return Trt.float32

    def create_execution_context(self):
        return Context8(self)


class Context8:
    def __init__(self, engine):
        self.engine = engine

    def set_binding_shape(self, index, shape):
        assert tuple(shape) == self.engine.shapes[self.engine.names[index]]

    def execute_async_v2(self, bindings, stream):
        self.engine.execute({n: bindings[i] for i, n in enumerate(self.engine.names)})
        return True


@pytest.fixture(scope="module")
def bundle():
    return load_bundle(GM_NOTES)


def _frames(graph, count, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        graph.inputs["z"][...] = rng.standard_normal(graph.inputs["z"].shape) * 0.5
        graph.inputs["attributes"][...] = 0.1
        graph.fill_noise()
        graph.run()
        out.append(graph.outputs[graph.spec.outputs[0].name].copy())
    return np.concatenate(out, axis=-1)


@pytest.mark.parametrize("make", [Engine10, Engine8], ids=["trt10", "trt8"])
def test_the_runner_streams_what_onnx_runtime_streams(bundle, make):
    spec = bundle.graphs["decoder"]
    device = Device()
    runner = TrtGraphRunner(spec, Trt, make(spec, device), device, NOISE_SEED)
    cpu = open_engine(bundle, "ort-cpu", roles=["decoder"]).graphs["decoder"]
    expected = _frames(cpu, 12)
    got = _frames(runner, 12)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.abs(expected).max() > 1e-3
    # A reset replays the same sound (states zeroed, the noise reseeded).
    runner.reset()
    np.testing.assert_array_equal(_frames(runner, 12), got)
    runner.close()
    assert device.memory == {}


def test_the_state_moves_between_the_cpu_engine_and_the_runner(bundle):
    spec = bundle.graphs["decoder"]
    device = Device()
    runner = TrtGraphRunner(spec, Trt, Engine10(spec, device), device, NOISE_SEED)
    cpu = open_engine(bundle, "ort-cpu", roles=["decoder"]).graphs["decoder"]
    reference = open_engine(bundle, "ort-cpu", roles=["decoder"]).graphs["decoder"]
    whole = _frames(reference, 20, seed=5)
    rng = np.random.default_rng(5)
    first = []
    for _ in range(9):                        # the CPU plays the first 9 frames...
        cpu.inputs["z"][...] = rng.standard_normal(cpu.inputs["z"].shape) * 0.5
        cpu.inputs["attributes"][...] = 0.1
        cpu.fill_noise()
        cpu.run()
        first.append(cpu.outputs["audio"].copy())
    runner.restore(cpu.snapshot())            # ...the runner the rest, from its state
    rest = []
    for _ in range(11):
        runner.inputs["z"][...] = rng.standard_normal(runner.inputs["z"].shape) * 0.5
        runner.inputs["attributes"][...] = 0.1
        runner.fill_noise()
        runner.run()
        rest.append(runner.outputs["audio"].copy())
    np.testing.assert_allclose(np.concatenate(first + rest, axis=-1), whole, atol=1e-5)
    # And back: the runner's snapshot restores into an ONNX Runtime engine.
    saved = runner.snapshot()
    assert len(saved[0]) == len(spec.states)
    cpu.restore(saved)
    for mine, theirs in zip(cpu.state(), runner.state()):
        np.testing.assert_array_equal(mine, theirs)


def test_an_engine_whose_tensors_are_not_model_json_s_is_refused(bundle):
    spec = bundle.graphs["decoder"]
    device = Device()
    engine = Engine10(spec, device)
    engine.outputs = engine.outputs[:-1]
    engine.num_io_tensors -= 1
    with pytest.raises(TrtUnavailable, match="not model.json's"):
        TrtGraphRunner(spec, Trt, engine, device, NOISE_SEED)
