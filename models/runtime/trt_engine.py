"""The native TensorRT engine: the decoder the design names, on the module's GPU.

NOT YET RUN ON REAL HARDWARE. TensorRT's builder cannot be installed on any machine this
project was developed on (REFERENCES.md, "GPU work in this workplace"): this file is
written against TensorRT's documented Python API for 8.x (JetPack 4.6 ships 8.2) and
10.x, kept small, and its first real run is `tools/gpu-check.sh` on a Jetson. Tests
here cover everything around it (cache keys, invalidation, the engine's choice, the
background build and swap, the fallbacks).

What it does, per graph of the bundle:
- build: parse the ONNX (fixed shapes, explicit state inputs and outputs, all float32),
  FP16 where the GPU has fast FP16 (I/O stays float32), a workspace limit that fits a
  4 GB Nano, TensorRT's timing cache loaded and saved back; `build_serialized_network`
  (8.0+). The plan is stored in the cache folder (engine_cache.py) under a key of the
  graph's sha256, TensorRT's version, the GPU's name and compute capability and the
  precision; the next start deserialises it (well under a second) instead of building.
- run: host numpy arrays for the signal inputs and outputs (the same interface as the
  ONNX Runtime runner: write `inputs`, `run()`, read `outputs`), copied to and from
  device buffers on one CUDA stream each call. The streaming states stay on the device
  in two buffers each that swap roles every call (read A write B, then read B write A),
  as the ONNX Runtime runner's host buffers do; `snapshot()` copies the state the next
  call reads to the host, `restore()` copies it back, so a state moves between engines
  (the background upgrade from the CPU engine carries it).
- API differences: TensorRT 10 names tensors (`num_io_tensors`, `get_tensor_name`,
  `set_tensor_address`, `execute_async_v3`; 8.5+ has them too), TensorRT 8.2 indexes
  bindings (`num_bindings`, `get_binding_index`, `execute_async_v2`). The workspace is
  `set_memory_pool_limit(WORKSPACE)` from 8.4, `max_workspace_size` before.
- GPU memory through a kept library, never hand-written ctypes: cuda-python (its
  runtime API, what TensorRT's samples use from 8.6; CUDA 11+) or PyCUDA (what TensorRT
  8.2's samples use, and the one that builds against JetPack 4.6's CUDA 10.2).
"""
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from neurorave.models.runtime.bundle import Bundle, GraphSpec
from neurorave.models.runtime.engine_cache import EngineCache, GpuInfo, engine_key, gpu_info

WORKSPACE_BYTES = 256 << 20


class TrtUnavailable(RuntimeError):
    """The native engine cannot run (or build) here; the message says why."""


def import_tensorrt() -> Any:
    try:
        import tensorrt
    except ImportError:
        raise TrtUnavailable("the tensorrt Python package is not installed (JetPack: "
                             "python3-libnvinfer, reached from the venv through "
                             "--system-site-packages)") from None
    return tensorrt


# ---- GPU memory: cuda-python or PyCUDA ----------------------------------------------------
class _CudaPython:
    """cuda-python's runtime API: the primary context, shared by every thread."""

    name = "cuda-python"

    def __init__(self) -> None:
        from neurorave.models.runtime.engine_cache import cuda_runtime

        self.rt = cuda_runtime()
        self._call(self.rt.cudaFree(0))  # creates the context now, not on the voice thread
        self.stream = self._call(self.rt.cudaStreamCreate())
        self.stream_handle = int(self.stream)

    def _call(self, result: Any) -> Any:
        err, rest = result[0], result[1:]
        if int(err) != 0:
            text = self.rt.cudaGetErrorString(err)[1]
            raise TrtUnavailable(f"CUDA: {text.decode() if isinstance(text, bytes) else text}")
        return rest[0] if len(rest) == 1 else (rest or None)

    def ensure_context(self) -> None:
        pass  # the runtime API makes the primary context current on any thread

    def malloc(self, nbytes: int) -> int:
        return int(self._call(self.rt.cudaMalloc(nbytes)))

    def free(self, pointer: int) -> None:
        self.rt.cudaFree(pointer)

    def to_device(self, pointer: int, array: np.ndarray) -> None:
        self._call(self.rt.cudaMemcpyAsync(pointer, array.ctypes.data, array.nbytes,
                                           self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice,
                                           self.stream))

    def to_host(self, array: np.ndarray, pointer: int) -> None:
        self._call(self.rt.cudaMemcpyAsync(array.ctypes.data, pointer, array.nbytes,
                                           self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost,
                                           self.stream))

    def zero(self, pointer: int, nbytes: int) -> None:
        self._call(self.rt.cudaMemsetAsync(pointer, 0, nbytes, self.stream))

    def sync(self) -> None:
        self._call(self.rt.cudaStreamSynchronize(self.stream))


class _PyCuda:
    """PyCUDA on the device's primary context (the one TensorRT's runtime API uses),
    made current once in each thread that touches it (the loader opens the engine, the
    voice thread runs it)."""

    name = "pycuda"

    def __init__(self) -> None:
        import pycuda.driver as drv

        self.drv = drv
        drv.init()
        self.context = drv.Device(0).retain_primary_context()
        self._threads: set = set()
        self.ensure_context()
        self.stream = drv.Stream()
        self.stream_handle = int(self.stream.handle)
        self._allocations: Dict[int, Any] = {}

    def ensure_context(self) -> None:
        me = threading.get_ident()
        if me not in self._threads:
            self.context.push()
            self._threads.add(me)

    def malloc(self, nbytes: int) -> int:
        allocation = self.drv.mem_alloc(nbytes)
        self._allocations[int(allocation)] = allocation
        return int(allocation)

    def free(self, pointer: int) -> None:
        allocation = self._allocations.pop(pointer, None)
        if allocation is not None:
            allocation.free()

    def to_device(self, pointer: int, array: np.ndarray) -> None:
        # Pageable host memory: PyCUDA's async copies want page-locked memory, so these
        # copies are synchronous (the legacy default stream orders them with `stream`).
        self.drv.memcpy_htod(pointer, array)

    def to_host(self, array: np.ndarray, pointer: int) -> None:
        self.stream.synchronize()
        self.drv.memcpy_dtoh(array, pointer)

    def zero(self, pointer: int, nbytes: int) -> None:
        self.drv.memset_d8(pointer, 0, nbytes)

    def sync(self) -> None:
        self.stream.synchronize()


def open_device() -> Any:
    """cuda-python where it is installed, else PyCUDA; TrtUnavailable with both missing."""
    errors = []
    for make in (_CudaPython, _PyCuda):
        try:
            return make()
        except ImportError as exc:
            errors.append(f"{make.name} not installed ({exc.name or exc})")
        except TrtUnavailable as exc:
            errors.append(f"{make.name}: {exc}")
        except Exception as exc:  # noqa: BLE001 - the library's own error types
            errors.append(f"{make.name}: {type(exc).__name__}: {exc}")
    raise TrtUnavailable("no GPU memory library: " + "; ".join(errors))


# ---- build and load ------------------------------------------------------------------------
def trt_key(trt: Any, spec: GraphSpec, gpu: Optional[GpuInfo], fp16: bool) -> Dict[str, Any]:
    return engine_key(spec.sha256, "tensorrt", trt.__version__, gpu, "fp16" if fp16 else "fp32")


def build_plan(trt: Any, logger: Any, spec: GraphSpec, fp16: bool, timing: bytes
               ) -> Tuple[bytes, bytes, List[str]]:
    """A serialised engine for one graph, the timing cache after the build, and notes."""
    notes: List[str] = []
    builder = trt.Builder(logger)
    flag = getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH", None)
    network = builder.create_network(0 if flag is None else 1 << int(flag))
    parser = trt.OnnxParser(network, logger)
    with open(spec.path, "rb") as handle:
        if not parser.parse(handle.read()):
            errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
            raise TrtUnavailable(f"TensorRT cannot parse {spec.role}: "
                                 + ("; ".join(errors[:3]) or "no reason given"))
    config = builder.create_builder_config()
    if hasattr(config, "set_memory_pool_limit"):          # 8.4 and later
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    else:                                                  # 8.2 (JetPack 4.6)
        config.max_workspace_size = WORKSPACE_BYTES
    if fp16:
        if getattr(builder, "platform_has_fast_fp16", True):
            config.set_flag(trt.BuilderFlag.FP16)
        else:
            notes.append("this GPU has no fast FP16: built in FP32")
    try:
        cache = config.create_timing_cache(timing)
    except Exception:  # noqa: BLE001 - a damaged timing cache: start an empty one
        notes.append("the timing cache was unreadable: started afresh")
        cache = config.create_timing_cache(b"")
    config.set_timing_cache(cache, False)
    shapes = _shapes(spec)
    dynamic = [network.get_input(i) for i in range(network.num_inputs)
               if any(d < 0 for d in network.get_input(i).shape)]
    if dynamic:  # fixed shapes all the same: the ones model.json names
        profile = builder.create_optimization_profile()
        for tensor in dynamic:
            shape = shapes[tensor.name]
            profile.set_shape(tensor.name, shape, shape, shape)
        config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise TrtUnavailable(f"TensorRT could not build {spec.role} (see its log above; "
                             "out of GPU memory is the usual reason on a Nano)")
    return bytes(plan), bytes(config.get_timing_cache().serialize()), notes


def _shapes(spec: GraphSpec) -> Dict[str, Tuple[int, ...]]:
    shapes = {t.name: t.shape for t in spec.inputs + spec.outputs}
    for s in spec.states:
        shapes[s.input] = shapes[s.output] = s.shape
    return shapes


class _Logger:
    """One TensorRT logger and runtime per process (they must outlive the engines)."""

    trt: Any = None
    logger: Any = None
    runtime: Any = None

    @classmethod
    def get(cls, trt: Any) -> Tuple[Any, Any]:
        if cls.logger is None:
            cls.trt = trt
            cls.logger = trt.Logger(trt.Logger.WARNING)
            cls.runtime = trt.Runtime(cls.logger)
        return cls.logger, cls.runtime


def load_or_build(trt: Any, spec: GraphSpec, cache: EngineCache, gpu: Optional[GpuInfo],
                  fp16: bool, log: Callable[[str], None]) -> Tuple[Any, bool, float]:
    """The deserialised engine for one graph, whether it was built now, and the seconds."""
    logger, runtime = _Logger.get(trt)
    key = trt_key(trt, spec, gpu, fp16)
    start = time.perf_counter()
    plan = cache.load_plan(spec.role, key)
    if plan is not None:
        engine = runtime.deserialize_cuda_engine(plan)
        if engine is not None:
            return engine, False, time.perf_counter() - start
        log(f"trt: the cached {spec.role} engine would not load: rebuilt")
        cache.discard_plan(spec.role, key)
    plan, timing, notes = build_plan(trt, logger, spec, fp16, cache.load_timing(key))
    for note in notes:
        log(f"trt: {note}")
    cache.store_timing(key, timing)
    cache.store_plan(spec.role, key, plan, {"built_s": round(time.perf_counter() - start, 3)})
    engine = runtime.deserialize_cuda_engine(plan)
    if engine is None:
        cache.discard_plan(spec.role, key)
        raise TrtUnavailable(f"TensorRT built {spec.role} but cannot load it")
    return engine, True, time.perf_counter() - start


# ---- the runner -----------------------------------------------------------------------
class TrtGraphRunner:
    """One graph on a TensorRT engine, the ONNX Runtime runner's interface (see above)."""

    def __init__(self, spec: GraphSpec, trt: Any, engine: Any, device: Any, noise_seed: int):
        self.spec = spec
        self.kind = "trt"
        self.provider = f"TensorRT {trt.__version__}"
        self._trt = trt
        self._engine = engine
        self._device = device
        self._noise_seed = noise_seed
        self.context = engine.create_execution_context()
        if self.context is None:
            raise TrtUnavailable(f"TensorRT cannot make an execution context for {spec.role} "
                                 "(out of GPU memory?)")
        self._tensor_api = hasattr(self.context, "execute_async_v3") \
            and hasattr(engine, "num_io_tensors")
        self._check_signature()
        zeros = np.zeros
        self.inputs: Dict[str, np.ndarray] = {t.name: zeros(t.shape, np.float32)
                                              for t in spec.inputs}
        self.outputs: Dict[str, np.ndarray] = {t.name: zeros(t.shape, np.float32)
                                               for t in spec.outputs}
        self._pointers: List[int] = []
        self._in = [(self.inputs[t.name], self._alloc(self.inputs[t.name].nbytes), t.name)
                    for t in spec.inputs]
        self._out = [(self.outputs[t.name], self._alloc(self.outputs[t.name].nbytes), t.name)
                     for t in spec.outputs]
        self._states = [(s, self._alloc(4 * int(np.prod(s.shape))),
                         self._alloc(4 * int(np.prod(s.shape)))) for s in spec.states]
        self._set_shapes()
        self._bindings = [self._binding_list(flip) for flip in (0, 1)] \
            if not self._tensor_api else []
        if self._tensor_api:
            for _host, pointer, name in self._in + self._out:
                self.context.set_tensor_address(name, pointer)
        self._noise = [(self.inputs[n.input], n.low, n.high - n.low) for n in spec.noise]
        self._flip = 0
        self.reset()

    def _alloc(self, nbytes: int) -> int:
        pointer = self._device.malloc(nbytes)
        self._pointers.append(pointer)
        return pointer

    def _io_names(self) -> Dict[str, bool]:
        """{tensor name: is an input} as the engine has them."""
        engine, trt = self._engine, self._trt
        if hasattr(engine, "num_io_tensors"):
            names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
            return {n: engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        return {engine.get_binding_name(i): bool(engine.binding_is_input(i))
                for i in range(engine.num_bindings)}

    def _dtype(self, name: str) -> Any:
        engine = self._engine
        if hasattr(engine, "get_tensor_dtype"):
            return engine.get_tensor_dtype(name)
        return engine.get_binding_dtype(engine.get_binding_index(name))

    def _check_signature(self) -> None:
        spec = self.spec
        wanted = {t.name: True for t in spec.inputs}
        wanted.update({s.input: True for s in spec.states})
        wanted.update({t.name: False for t in spec.outputs})
        wanted.update({s.output: False for s in spec.states})
        actual = self._io_names()
        if actual != wanted:
            raise TrtUnavailable(f"the {spec.role} engine's tensors "
                                 f"{sorted(actual)} are not model.json's {sorted(wanted)}")
        for name in actual:
            if self._dtype(name) != self._trt.float32:
                raise TrtUnavailable(f"{spec.role} tensor '{name}' is not float32 in the engine")

    def _set_shapes(self) -> None:
        """Fixed shapes (a graph exported with a dynamic axis gets model.json's)."""
        shapes = _shapes(self.spec)
        for name, is_input in self._io_names().items():
            if not is_input:
                continue
            if hasattr(self.context, "set_input_shape"):
                self.context.set_input_shape(name, shapes[name])
            else:
                self.context.set_binding_shape(self._engine.get_binding_index(name),
                                               shapes[name])

    def _binding_list(self, flip: int) -> List[int]:
        engine = self._engine
        bindings = [0] * engine.num_bindings
        for _host, pointer, name in self._in + self._out:
            bindings[engine.get_binding_index(name)] = pointer
        for state, a, b in self._states:
            source, target = (a, b) if flip == 0 else (b, a)
            bindings[engine.get_binding_index(state.input)] = source
            bindings[engine.get_binding_index(state.output)] = target
        return bindings

    def _current(self) -> List[int]:
        """The device buffer of each state that the next call reads."""
        return [a if self._flip == 0 else b for _s, a, b in self._states]

    def reset(self, seed: Optional[int] = None) -> None:
        """Zero the state; the noise restarts from `seed` (default: the fixed seed)."""
        self._device.ensure_context()
        for state, a, b in self._states:
            nbytes = 4 * int(np.prod(state.shape))
            self._device.zero(a, nbytes)
            self._device.zero(b, nbytes)
        self._device.sync()
        self._flip = 0
        self._rng = np.random.default_rng(self._noise_seed if seed is None else seed)

    def snapshot(self) -> Tuple[List[np.ndarray], Any]:
        """A host copy of the state the next call reads, and of the noise generator."""
        self._device.ensure_context()
        copies = [np.zeros(s.shape, np.float32) for s, _a, _b in self._states]
        for array, pointer in zip(copies, self._current()):
            self._device.to_host(array, pointer)
        self._device.sync()
        return copies, self._rng.bit_generator.state

    def restore(self, saved: Tuple[List[np.ndarray], Any]) -> None:
        """Back to a `snapshot()` (this engine's or another kind's: the same layout)."""
        states, rng_state = saved
        self._device.ensure_context()
        for pointer, value in zip(self._current(), states):
            self._device.to_device(pointer, np.ascontiguousarray(value, dtype=np.float32))
        self._device.sync()
        self._rng.bit_generator.state = rng_state

    def fill_noise(self) -> None:
        for array, low, span in self._noise:
            self._rng.random(out=array, dtype=np.float32)
            if span != 1.0:
                array *= span
            if low != 0.0:
                array += low

    def run(self) -> None:
        """One call: inputs to the device, the engine, outputs back; the states swap."""
        device = self._device
        device.ensure_context()
        for host, pointer, _name in self._in:
            device.to_device(pointer, host)
        if self._tensor_api:
            for state, a, b in self._states:
                source, target = (a, b) if self._flip == 0 else (b, a)
                self.context.set_tensor_address(state.input, source)
                self.context.set_tensor_address(state.output, target)
            ok = self.context.execute_async_v3(device.stream_handle)
        else:
            ok = self.context.execute_async_v2(self._bindings[self._flip], device.stream_handle)
        if not ok:
            raise RuntimeError(f"TensorRT failed to run {self.spec.role}")
        for host, pointer, _name in self._out:
            device.to_host(host, pointer)
        device.sync()
        self._flip ^= 1

    def state(self) -> List[np.ndarray]:
        """Host copies of the current caches (for tests and checks)."""
        return self.snapshot()[0]

    def close(self) -> None:
        for pointer in self._pointers:
            self._device.free(pointer)
        self._pointers = []


def open_trt_graphs(bundle: Bundle, roles: Sequence[str], cache_dir: str, fp16: bool,
                    noise_seed: int, log: Optional[Callable[[str], None]] = None
                    ) -> Tuple[Dict[str, Any], List[str]]:
    """Every wanted graph of the bundle on TensorRT, built or loaded from the cache;
    TrtUnavailable says why not."""
    trt = import_tensorrt()
    gpu = gpu_info()
    if gpu is None:
        raise TrtUnavailable(f"TensorRT {trt.__version__} is installed but no CUDA GPU answers")
    notes: List[str] = []
    say = log or notes.append
    device = open_device()
    cache = EngineCache(cache_dir)
    graphs: Dict[str, Any] = {}
    for role in roles:
        if role not in bundle.graphs:
            continue
        spec = bundle.graphs[role]
        try:
            engine, built, seconds = load_or_build(trt, spec, cache, gpu, fp16, say)
        except MemoryError:
            raise TrtUnavailable(f"out of memory building {role}") from None
        say(f"trt: {role} {'built' if built else 'loaded from the cache'} in {seconds:.2f} s "
            f"({gpu.name}, sm {gpu.capability}, {'fp16' if fp16 else 'fp32'}, "
            f"{device.name})")
        graphs[role] = TrtGraphRunner(spec, trt, engine, device, noise_seed)
    return graphs, notes
