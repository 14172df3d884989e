"""ONNX Runtime's GPU providers, set up for a module, and who really runs each node.

`ort-gpu` asks for TensorRT's provider first, CUDA's next, the CPU last (for the few
nodes neither takes). TensorRT's provider builds its engine when the session opens:
without options it builds FP32 and forgets it, minutes on a Jetson Nano at every start.
So it gets FP16 (`trt_fp16_enable`), an engine cache (`trt_engine_cache_enable`,
`trt_engine_cache_path`: one folder per graph, keyed like the native engine's, see
engine_cache.py) and a timing cache (`trt_timing_cache_enable`, and from onnxruntime
1.16 `trt_timing_cache_path`; older versions keep it in the engine folder, and 1.11,
JetPack 4.6's, has none), and a workspace limit that fits a 4 GB Nano.

ONNX Runtime assigns nodes to providers silently: a session that lists TensorRT first
may run most of the graph on CUDA or the CPU. `node_providers` tells, by the one method
ONNX Runtime exposes for it: a session opened with profiling on runs a few frames, and
every kernel event of the profile (`cat` "Node", name ending in `_kernel_time`) names
its provider in `args.provider`. TensorRT's provider shows as one fused node per engine
(`TensorrtExecutionProvider_TRTKernel_...`), so the report gives both the nodes and
the share of kernel time each provider took.
"""
import json
import os
import tempfile
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
from neurorave.models.runtime.bundle import GraphSpec
from neurorave.models.runtime.engine_cache import (
    EngineCache,
    default_cache_dir,
    engine_key,
    gpu_info,
    ort_runtime_version,
)

TRT_EP = "TensorrtExecutionProvider"
CUDA_EP = "CUDAExecutionProvider"
CPU_EP = "CPUExecutionProvider"
# TensorRT's scratch memory while it builds: the Nano shares 4 GB between CPU and GPU.
WORKSPACE_BYTES = 256 << 20
PROFILE_CALLS = 3

Provider = Union[str, Tuple[str, Dict[str, str]]]


def _version(text: str) -> Tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def trt_provider_options(ort_version: str, engine_dir: str, timing_dir: str,
                         fp16: bool = True) -> Dict[str, str]:
    """The TensorRT provider's options for this onnxruntime version."""
    options = {
        "device_id": "0",
        "trt_fp16_enable": "True" if fp16 else "False",
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": engine_dir,
        "trt_max_workspace_size": str(WORKSPACE_BYTES),
    }
    version = _version(ort_version)
    if version >= (1, 12):
        options["trt_timing_cache_enable"] = "True"
    if version >= (1, 16):
        options["trt_timing_cache_path"] = timing_dir
    return options


def ort_key(ort: Any, spec: GraphSpec, fp16: bool) -> Dict[str, Any]:
    """The provider's engines depend on TensorRT's version as much as on ONNX Runtime's
    (a JetPack upgrade can change one and not the other)."""
    return engine_key(spec.sha256, "onnxruntime-trt", ort_runtime_version(ort.__version__),
                      gpu_info(), "fp16" if fp16 else "fp32")


def provider_list(ort: Any, kind: str, wanted: List[str], available: List[str],
                  spec: GraphSpec, cache_dir: Optional[str], fp16: bool = True
                  ) -> Tuple[List[Provider], Optional[str]]:
    """The providers for a session of `kind`, with their options, and the engine cache
    folder the TensorRT provider writes into (None when it is not asked for; `cache_dir`
    None: engines/ in the state directory)."""
    providers: List[Provider] = []
    engine_dir = None
    for name in wanted:
        if name not in available:
            continue
        if name == TRT_EP:
            cache = EngineCache(cache_dir or default_cache_dir())
            key = ort_key(ort, spec, fp16)
            engine_dir = cache.ort_trt_dir(key)
            timing_dir = cache.ort_timing_dir(key)
            os.makedirs(engine_dir, exist_ok=True)
            os.makedirs(timing_dir, exist_ok=True)
            providers.append((name, trt_provider_options(ort.__version__, engine_dir,
                                                         timing_dir, fp16)))
        else:
            providers.append(name)
    if kind != "ort-cpu":
        providers.append(CPU_EP)  # for the few nodes a GPU cannot take
    return providers, engine_dir


def open_session(ort: Any, path: str, options: Any, providers: List[Provider],
                 engine_dir: Optional[str]) -> Any:
    """An InferenceSession; where the TensorRT provider's cache is damaged (a session
    that fails to open with it), the cache folder is emptied and the session opened once
    more, so the engine is rebuilt rather than the model refused."""
    try:
        return ort.InferenceSession(path, sess_options=options, providers=providers)
    except Exception:
        if engine_dir is None or not os.listdir(engine_dir):
            raise
    EngineCache(os.path.dirname(os.path.dirname(engine_dir))).discard_dir(engine_dir)
    os.makedirs(engine_dir, exist_ok=True)
    return ort.InferenceSession(path, sess_options=options, providers=providers)


def node_providers(spec: GraphSpec, providers: List[Provider], threads: int = 1
                   ) -> Dict[str, Dict[str, float]]:
    """{provider: {"nodes": n, "time_share": 0..1}} for one graph, from a profiled
    session (see the module's docstring) that runs PROFILE_CALLS frames of zeros."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="neurorave-profile-") as folder:
        options = ort.SessionOptions()
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(folder, "probe")
        options.intra_op_num_threads = max(1, threads)
        options.log_severity_level = 3
        session = ort.InferenceSession(spec.path, sess_options=options, providers=providers)
        feed = {t.name: np.zeros(t.shape, np.float32) for t in spec.inputs}
        feed.update({s.input: np.zeros(s.shape, np.float32) for s in spec.states})
        for _ in range(PROFILE_CALLS):
            session.run(None, feed)
        with open(session.end_profiling(), encoding="utf-8") as handle:
            events = json.load(handle)
    return summarise_profile(events)


def summarise_profile(events: List[Dict[str, Any]]) -> Dict[str, Dict[str, float]]:
    nodes: Dict[str, set] = {}
    time_us: Dict[str, float] = {}
    for event in events:
        args = event.get("args") or {}
        name = str(event.get("name", ""))
        if event.get("cat") != "Node" or "provider" not in args \
                or not name.endswith("_kernel_time"):
            continue
        provider = str(args["provider"])
        nodes.setdefault(provider, set()).add(name)
        time_us[provider] = time_us.get(provider, 0.0) + float(event.get("dur", 0))
    total = sum(time_us.values()) or 1.0
    return {p: {"nodes": len(n), "time_share": round(time_us.get(p, 0.0) / total, 4)}
            for p, n in sorted(nodes.items(), key=lambda item: -time_us.get(item[0], 0.0))}


def describe_assignment(assignment: Dict[str, Dict[str, float]]) -> str:
    """"TensorRT 1 node 96%, CPU 2 nodes 4%"."""
    parts = []
    for provider, figures in assignment.items():
        n = int(figures["nodes"])
        parts.append(f"{provider.replace('ExecutionProvider', '')} {n} node"
                     f"{'s' if n != 1 else ''} {100 * figures['time_share']:.0f}%")
    return ", ".join(parts) or "no nodes ran"
