"""Inference engines: run a bundle's stateless graphs one frame at a time.

One interface for every engine: `open_engine(bundle, kind)` gives an `Engine` whose
`graphs[role]` (decoder, encoder, prior) each hold preallocated `inputs` and
`outputs` arrays. The caller writes into `inputs[...]` in place, calls `run()`, and
reads `outputs[...]`; nothing is allocated per call on our side. Inputs that model.json
declares as noise are filled by `fill_noise()` (call it before `run()`). Streaming caches
live in two preallocated buffers per state that swap roles every call (ONNX Runtime
writes the new cache into one while reading the old from the other), so a graph
never copies its state; `reset()` zeros them.

Which engine really runs is verified, never assumed: onnxruntime-gpu without a GPU
silently falls back to the CPU, so a GPU kind whose provider is not active raises
`EngineUnavailable`, and `auto` records each kind it skipped and why (`notes`).
"""
import contextlib
import os
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from neurorave.common.errors import first_line
from neurorave.models.runtime.bundle import Bundle, BundleError, GraphSpec
from neurorave.models.runtime.engine_cache import default_cache_dir
from neurorave.models.runtime.ort_providers import open_session, provider_list

KINDS = ("trt", "ort-gpu", "ort-cpu")
# The noise generator's seed after every reset, so a reset replays the same sound.
NOISE_SEED = 0x5EED
# `auto` tries the fastest first.
AUTO_ORDER = KINDS
_ORT_PROVIDERS = {
    "ort-gpu": ["TensorrtExecutionProvider", "CUDAExecutionProvider"],
    "ort-cpu": ["CPUExecutionProvider"],
}


class EngineUnavailable(RuntimeError):
    """This kind of engine cannot run here; the message says why."""


def run_options(ort):
    """RunOptions for the hot loop, with `gpu_graph_id` set to its default (0): the Python
    `run_with_iobinding` of onnxruntime 1.32 reads that key on every call, and an unset
    key raises inside pybind11 (caught): 45 us a call on a 2-core x86, where an empty
    graph then costs 50 us instead of 6. Versions that do not read it ignore it."""
    options = ort.RunOptions()
    if hasattr(options, "add_run_config_entry"):  # not in the oldest JetPack builds
        options.add_run_config_entry("gpu_graph_id", "0")
    return options


class GraphRunner:
    """One ONNX graph in an ONNX Runtime session, with bound preallocated buffers."""

    def __init__(self, spec: GraphSpec, kind: str, threads: int = 1,
                 cache_dir: Optional[str] = None, fp16: bool = True):
        import onnxruntime as ort

        self.spec = spec
        self.kind = kind
        wanted = _ORT_PROVIDERS[kind]
        available = ort.get_available_providers()
        if not any(p in available for p in wanted):
            raise EngineUnavailable(f"{kind}: onnxruntime here offers only {', '.join(available)}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        # TensorRT's provider with FP16 and its caches in `cache_dir`, CUDA's, the CPU's
        # (ort_providers.py); kept to ask later which provider runs which node.
        providers, engine_dir = provider_list(ort, kind, wanted, available, spec, cache_dir,
                                              fp16)
        self.requested_providers = providers
        name = os.path.basename(spec.path)
        try:
            self.session = open_session(ort, spec.path, options, providers, engine_dir)
        except Exception as exc:  # onnxruntime raises its own types for bad graphs
            raise BundleError(f"{name} cannot be loaded by onnxruntime: {first_line(exc)}") \
                from None
        active = self.session.get_providers()
        if kind != "ort-cpu" and not any(p in active for p in wanted):
            raise EngineUnavailable(f"{kind}: onnxruntime fell back to {', '.join(active)}")
        self.provider = active[0]
        self._check_signature(name)
        self._bind(ort)
        # One RunOptions for every call: without it onnxruntime builds one per call, and
        # its Python wrapper keeps ~120 bytes per call alive (measured with tracemalloc).
        self._run_options = run_options(ort)
        # White noise for the inputs model.json declares as noise; reseeded by reset().
        self._noise = [(self.inputs[n.input], n.low, n.high - n.low) for n in spec.noise]
        self._rng = np.random.default_rng(NOISE_SEED)

    def _check_signature(self, name: str) -> None:
        declared_in = [(t.name, t.shape) for t in self.spec.inputs]
        declared_in += [(s.input, s.shape) for s in self.spec.states]
        declared_out = [(t.name, t.shape) for t in self.spec.outputs]
        declared_out += [(s.output, s.shape) for s in self.spec.states]
        for kind, declared, actual in (
            ("input", declared_in, self.session.get_inputs()),
            ("output", declared_out, self.session.get_outputs()),
        ):
            actual_shapes = {a.name: a.shape for a in actual}
            for tensor, shape in declared:
                if tensor not in actual_shapes:
                    raise BundleError(f"{name} has no {kind} '{tensor}' (model.json names it)")
                real = actual_shapes[tensor]
                fixed = [d if isinstance(d, int) else None for d in real]
                if len(real) != len(shape) or any(f is not None and f != s
                                                  for f, s in zip(fixed, shape)):
                    raise BundleError(f"{name} {kind} '{tensor}' has shape {list(real)}, "
                                      f"model.json says {list(shape)}")
            extra = set(actual_shapes) - {t for t, _ in declared}
            if extra:
                raise BundleError(f"{name} has {kind}(s) model.json does not name: "
                                  f"{', '.join(sorted(extra))}")

    def _bind(self, ort) -> None:
        def zeros(shape: Tuple[int, ...]) -> np.ndarray:
            return np.zeros(shape, dtype=np.float32)

        self.inputs: Dict[str, np.ndarray] = {t.name: zeros(t.shape) for t in self.spec.inputs}
        self.outputs: Dict[str, np.ndarray] = {t.name: zeros(t.shape) for t in self.spec.outputs}
        # Two buffers per state: binding 0 reads A writes B, binding 1 reads B writes A.
        self._state_buffers = [(zeros(s.shape), zeros(s.shape)) for s in self.spec.states]
        self._values: List[object] = []  # keep the OrtValues (views of our arrays) alive
        self._bindings = []
        for flip in (0, 1):
            binding = self.session.io_binding()
            for name, array in list(self.inputs.items()):
                binding.bind_ortvalue_input(name, self._wrap(ort, array))
            for name, array in list(self.outputs.items()):
                binding.bind_ortvalue_output(name, self._wrap(ort, array))
            for state, (a, b) in zip(self.spec.states, self._state_buffers):
                source, target = (a, b) if flip == 0 else (b, a)
                binding.bind_ortvalue_input(state.input, self._wrap(ort, source))
                binding.bind_ortvalue_output(state.output, self._wrap(ort, target))
            self._bindings.append(binding)
        self._flip = 0

    def _wrap(self, ort, array: np.ndarray):
        value = ort.OrtValue.ortvalue_from_numpy(array)
        self._values.append(value)
        return value

    def reset(self, seed: Optional[int] = None) -> None:
        """Zero the state; the noise restarts from `seed` (default: the fixed seed)."""
        for a, b in self._state_buffers:
            a.fill(0.0)
            b.fill(0.0)
        self._flip = 0
        self._rng = np.random.default_rng(NOISE_SEED if seed is None else seed)

    def snapshot(self) -> Tuple[List[np.ndarray], Any]:
        """A copy of the state the next call reads, and of the noise generator."""
        current = [a if self._flip == 0 else b for a, b in self._state_buffers]
        return [c.copy() for c in current], self._rng.bit_generator.state

    def restore(self, saved: Tuple[List[np.ndarray], Any]) -> None:
        """Back to a `snapshot()`: the next call computes what it computed then."""
        states, rng_state = saved
        for (a, b), value in zip(self._state_buffers, states):
            (a if self._flip == 0 else b)[...] = value
        self._rng.bit_generator.state = rng_state

    def fill_noise(self) -> None:
        """Fresh white noise into the noise inputs, in place (no allocation)."""
        for array, low, span in self._noise:
            self._rng.random(out=array, dtype=np.float32)
            if span != 1.0:  # the prior's [0, 1) needs neither pass (3 of its 9 us)
                array *= span
            if low != 0.0:
                array += low

    def run(self) -> None:
        """One call: reads `inputs` and the current state, writes `outputs` and the next."""
        self.session.run_with_iobinding(self._bindings[self._flip], self._run_options)
        self._flip ^= 1

    def state(self) -> List[np.ndarray]:
        """The current caches (views, for tests and snapshots)."""
        return [pair[self._flip] for pair in self._state_buffers]


class Engine:
    """A bundle's graphs on one kind of engine."""

    def __init__(self, bundle: Bundle, kind: str, graphs: Dict[str, GraphRunner],
                 notes: List[str], load_seconds: float):
        self.bundle = bundle
        self.kind = kind
        self.graphs = graphs
        self.notes = notes
        self.load_seconds = load_seconds
        self.build_notes: List[str] = []  # trt: what was built, what came from the cache

    @property
    def provider(self) -> str:
        return self.graphs["decoder"].provider

    def reset(self) -> None:
        for graph in self.graphs.values():
            graph.reset()

    def snapshot(self) -> Dict[str, Tuple[List[np.ndarray], Any]]:
        return {role: graph.snapshot() for role, graph in self.graphs.items()}

    def restore(self, saved: Dict[str, Tuple[List[np.ndarray], Any]]) -> None:
        for role, graph in self.graphs.items():
            graph.restore(saved[role])

    def describe(self) -> str:
        return f"{self.kind} ({self.provider})"


def preload_libraries() -> None:
    """Import ONNX Runtime now, before any audio plays: its first import holds the GIL
    for up to about 40 ms at once (measured on a 2-core x86), longer than the audio
    feed's slack, so a feed already playing would drop out."""
    with contextlib.suppress(ImportError):  # opening a model says what is missing
        import onnxruntime  # noqa: F401


def _open_kind(bundle: Bundle, kind: str, threads: int, roles: Sequence[str],
               cache_dir: Optional[str] = None, fp16: bool = True) -> Engine:
    if kind == "trt":
        # The native engine (trt_engine.py): built once per graph, TensorRT version and
        # GPU, kept in `cache_dir` (default: engines/ in the state directory).
        from neurorave.models.runtime.trt_engine import TrtUnavailable, open_trt_graphs

        start = time.perf_counter()
        try:
            trt_graphs, notes = open_trt_graphs(bundle, roles, cache_dir or default_cache_dir(),
                                                fp16, NOISE_SEED)
        except TrtUnavailable as exc:
            raise EngineUnavailable(f"trt: {exc}") from None
        _check_first_frame(trt_graphs)
        engine = Engine(bundle, kind, trt_graphs, [], time.perf_counter() - start)
        engine.build_notes = notes
        return engine
    if kind not in _ORT_PROVIDERS:
        raise EngineUnavailable(f"unknown engine kind '{kind}' (choose from auto, "
                                f"{', '.join(KINDS)})")
    start = time.perf_counter()
    graphs = {role: GraphRunner(bundle.graphs[role], kind, threads, cache_dir, fp16)
              for role in roles if role in bundle.graphs}
    _check_first_frame(graphs)
    return Engine(bundle, kind, graphs, [], time.perf_counter() - start)


def _check_first_frame(graphs: Dict[str, GraphRunner]) -> None:
    """Run one frame of zeros: broken weights (NaN, inf) show up before any sound does."""
    for graph in graphs.values():
        graph.run()
        for name, array in graph.outputs.items():
            if not np.all(np.isfinite(array)):
                raise BundleError(f"{os.path.basename(graph.spec.path)} produces NaN or inf "
                                  f"in '{name}' from silence: its weights are broken")
        for state in graph.state():
            if not np.all(np.isfinite(state)):
                raise BundleError(f"{os.path.basename(graph.spec.path)} produces NaN or inf "
                                  "in its state from silence: its weights are broken")
        graph.reset()
        for array in graph.outputs.values():
            array.fill(0.0)


def open_engine(bundle: Bundle, kind: str = "auto", threads: int = 1,
                roles: Optional[Sequence[str]] = None, cache_dir: Optional[str] = None,
                fp16: bool = True) -> Engine:
    """Load a bundle's graphs on `kind` (or the fastest kind available for `auto`).
    The GPU kinds keep their compiled engines in `cache_dir` (engine_cache.py; trt's
    default: engines/ in the state directory) and run FP16 unless `fp16` is False."""
    wanted_roles = tuple(roles) if roles is not None else tuple(bundle.graphs)
    if kind != "auto":
        return _open_kind(bundle, kind, threads, wanted_roles, cache_dir, fp16)
    notes: List[str] = []
    for candidate in AUTO_ORDER:
        try:
            engine = _open_kind(bundle, candidate, threads, wanted_roles, cache_dir, fp16)
        except EngineUnavailable as exc:
            notes.append(str(exc))
            continue
        engine.notes = notes
        return engine
    raise EngineUnavailable("no engine can run here: " + "; ".join(notes))
