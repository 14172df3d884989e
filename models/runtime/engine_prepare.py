"""Building a GPU engine ahead of time, in a child process, and knowing when one is ready.

The first start of a model on a GPU kind compiles it (TensorRT: minutes on a Jetson
Nano). The daemon does not wait for that: it plays on the CPU engine and runs this
module as a child process (`python -m neurorave.models.runtime.engine_prepare`), which
opens the bundle on the GPU kind with the same cache folder, so the compiled engines
land in the cache, then writes a *ready* marker with what it found (which provider runs
each graph). The daemon then opens the same kind in-process from the cache, which is
quick, and the voice swaps to it (firmware/engine_upgrade.py).

A child, not a thread: a build that runs out of memory takes the child down, not the
instrument (the Nano's 4 GB are shared by CPU and GPU); a build that takes too long is
killed; the builder's memory is given back when the child exits; the child runs at a
lower priority than the voice. A failed build writes a *failed* marker (with the
reason) so that the next start does not spend its minutes on it again; removing the
file (`neurorave doctor` lists them) tries again.

Markers are keyed by the kind, every graph's sha256, the runtime's version, the GPU and
the precision (engine_cache.py): a new model, runtime or GPU is built afresh.
"""
import argparse
import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Dict, List, Optional, Sequence

from neurorave.models.runtime.bundle import Bundle, load_bundle
from neurorave.models.runtime.engine_cache import (
    CACHE_FORMAT,
    EngineCache,
    gpu_info,
    ort_runtime_version,
    tensorrt_version,
)

GPU_KINDS = ("trt", "ort-gpu")
EXIT_UNAVAILABLE = 3


def runtime_version(kind: str) -> Optional[str]:
    """The version of the libraries that `kind` compiles with, None where they are
    missing. ONNX Runtime's TensorRT provider builds with the TensorRT it finds, so its
    engines depend on both versions. TensorRT is not imported for this (see
    `tensorrt_version`)."""
    if kind == "trt":
        return tensorrt_version()
    try:
        import onnxruntime
    except ImportError:
        return None
    return ort_runtime_version(str(onnxruntime.__version__))


def bundle_key(kind: str, bundle: Bundle, roles: Sequence[str], fp16: bool = True
               ) -> Optional[Dict[str, Any]]:
    version = runtime_version(kind)
    if version is None:
        return None
    gpu = gpu_info()
    return {"format": CACHE_FORMAT, "kind": kind,
            "graphs": {r: bundle.graphs[r].sha256 for r in roles if r in bundle.graphs},
            "runtime_version": version, "gpu": gpu.name if gpu else "none",
            "capability": gpu.capability if gpu else "none",
            "precision": "fp16" if fp16 else "fp32"}


def why_not(kind: str) -> Optional[str]:
    """None where `kind` may run here (a quick look, no engine opened), else why not."""
    if kind == "trt":
        if importlib.util.find_spec("tensorrt") is None:
            return "the tensorrt Python package is not installed"
    elif kind == "ort-gpu":
        if importlib.util.find_spec("onnxruntime") is None:
            return "onnxruntime is not installed"
        import onnxruntime

        offered = onnxruntime.get_available_providers()
        if not any(p in offered for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider")):
            return (f"onnxruntime {onnxruntime.__version__} here is CPU-only (offers "
                    f"{', '.join(offered)})")
    elif kind != "ort-cpu":
        return f"unknown engine kind '{kind}'"
    if kind != "ort-cpu" and gpu_info() is None:
        return "no CUDA GPU answers (no cuda-python, PyCUDA, nvidia-smi or Jetson board)"
    return None


def ready_kinds(bundle: Bundle, roles: Sequence[str], cache_dir: str,
                kinds: Sequence[str] = GPU_KINDS) -> List[str]:
    """The kinds whose engines for this bundle a background build has finished here."""
    cache = EngineCache(cache_dir)
    found = []
    for kind in kinds:
        if why_not(kind) is not None:
            continue
        key = bundle_key(kind, bundle, roles)
        if key is not None and cache.read_marker("ready", kind, key) is not None:
            found.append(kind)
    return found


def open_ready(bundle: Bundle, kind: str, threads: int, roles: Sequence[str],
               cache_dir: Optional[str]) -> Any:
    """What a model opens on at load. `auto` with a cache folder: the CPU engine now; the
    firmware then brings in a GPU engine, from the cache when one was built before, and
    keeps the CPU one until the GPU one has rendered a while on the voice's own thread
    (firmware/engine_upgrade.py). Anything else: `open_engine` as asked."""
    from neurorave.models.runtime.engines import open_engine

    if kind != "auto" or cache_dir is None:
        return open_engine(bundle, kind, threads, roles=roles, cache_dir=cache_dir)
    notes = [f"{k}: {why}" for k, why in ((k, why_not(k)) for k in GPU_KINDS) if why]
    ready = ready_kinds(bundle, roles, cache_dir)
    if ready:
        notes.append(f"{', '.join(ready)} built here before: swapped in once it opens")
    engine = open_engine(bundle, "ort-cpu", threads, roles=roles, cache_dir=cache_dir)
    engine.notes = notes
    return engine


def engine_assignment(engine: Any, threads: int = 1) -> Dict[str, Dict[str, Dict[str, float]]]:
    """{role: {provider: {"nodes", "time_share"}}}: who really runs each graph. ONNX
    Runtime from a profiled run (ort_providers.node_providers); TensorRT runs every
    layer of its engine itself."""
    from neurorave.models.runtime.ort_providers import node_providers

    found: Dict[str, Dict[str, Dict[str, float]]] = {}
    for role, graph in engine.graphs.items():
        providers = getattr(graph, "requested_providers", None)
        if providers is None:  # the native TensorRT runner
            layers = getattr(getattr(graph, "_engine", None), "num_layers", 0)
            found[role] = {graph.provider: {"nodes": int(layers), "time_share": 1.0}}
        else:
            found[role] = node_providers(graph.spec, providers, threads)
    return found


def describe(assignment: Dict[str, Dict[str, Dict[str, float]]]) -> str:
    from neurorave.models.runtime.ort_providers import describe_assignment

    return "; ".join(f"{role}: {describe_assignment(a)}" for role, a in assignment.items())


class PrepareResult:
    def __init__(self, ok: bool, reason: str = "", info: Optional[Dict[str, Any]] = None,
                 seconds: float = 0.0, unavailable: bool = False):
        self.ok = ok
        self.reason = reason
        self.info = info or {}
        self.seconds = seconds
        self.unavailable = unavailable  # the kind cannot run here at all (not a failed build)


def prepare_command(bundle_path: str, kind: str, cache_dir: str, roles: Sequence[str],
                    fp16: bool = True) -> List[str]:
    command = [sys.executable, "-m", "neurorave.models.runtime.engine_prepare", bundle_path,
               "--kind", kind, "--cache", cache_dir, "--roles", ",".join(roles)]
    return command + ([] if fp16 else ["--fp32"])


def run_prepare(bundle_path: str, kind: str, cache_dir: str, roles: Sequence[str],
                limit_s: float, cancelled: Optional[threading.Event] = None,
                command: Optional[List[str]] = None, fp16: bool = True) -> PrepareResult:
    """The child build, at most `limit_s` seconds (then killed); `cancelled` set: killed
    at once (the model it builds for was replaced)."""
    argv = command or prepare_command(bundle_path, kind, cache_dir, roles, fp16)
    start = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                 start_new_session=True)
        while True:
            try:
                child.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                pass
            over = time.monotonic() - start > limit_s
            if over or (cancelled is not None and cancelled.is_set()):
                _kill(child)
                seconds = time.monotonic() - start
                if over:
                    return PrepareResult(False, f"the build took longer than {limit_s:g} s "
                                         "and was stopped", seconds=seconds)
                return PrepareResult(False, "cancelled", seconds=seconds)
        seconds = time.monotonic() - start
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace").strip()
        stderr = err.read().decode(errors="replace").strip()
    code = child.returncode
    info: Dict[str, Any] = {}
    if stdout:
        try:
            info = json.loads(stdout.splitlines()[-1])
        except ValueError:
            info = {}
    if code == 0 and info.get("ok"):
        return PrepareResult(True, info=info, seconds=seconds)
    if code == EXIT_UNAVAILABLE:
        return PrepareResult(False, str(info.get("reason", "unavailable")), info, seconds,
                             unavailable=True)
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        if -code in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            # Stopped with the daemon (systemd signals the whole unit): no failure of the
            # build, which runs again at the next start.
            return PrepareResult(False, f"the build was interrupted ({name})", info, seconds,
                                 unavailable=True)
        why = " (out of memory?)" if -code == signal.SIGKILL else ""
        return PrepareResult(False, f"the build was killed by {name}{why}", info, seconds)
    last = (stderr.splitlines() or ["no message"])[-1]
    return PrepareResult(False, str(info.get("reason") or f"the build failed (exit {code}): "
                                    f"{last}"), info, seconds)


def _kill(child: "subprocess.Popen[bytes]") -> None:
    try:
        os.killpg(child.pid, signal.SIGKILL)  # the child leads its own session
    except OSError:
        child.kill()
    child.wait()


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="engine_prepare")
    parser.add_argument("bundle")
    parser.add_argument("--kind", required=True)
    parser.add_argument("--cache", required=True)
    parser.add_argument("--roles", default="decoder")
    parser.add_argument("--fp32", action="store_true")
    args = parser.parse_args(argv)
    with contextlib.suppress(OSError):
        os.nice(10)  # below the voice (and the rest of the daemon)
    from neurorave.models.runtime.engines import EngineUnavailable, open_engine

    start = time.monotonic()
    roles = [r for r in args.roles.split(",") if r]
    fp16 = not args.fp32
    try:
        bundle = load_bundle(args.bundle)
        roles = [r for r in roles if r in bundle.graphs]
        engine = open_engine(bundle, args.kind, 1, roles=roles, cache_dir=args.cache, fp16=fp16)
        assignment = engine_assignment(engine)
    except EngineUnavailable as exc:
        print(json.dumps({"ok": False, "reason": str(exc)}))
        return EXIT_UNAVAILABLE
    except MemoryError:
        print(json.dumps({"ok": False, "reason": "out of memory"}))
        return 1
    except Exception as exc:  # noqa: BLE001 - the parent reports it in one line
        print(json.dumps({"ok": False, "reason": f"{type(exc).__name__}: {exc}"}))
        return 1
    info = {"ok": True, "kind": engine.kind, "provider": engine.provider,
            "assignment": assignment, "notes": engine.build_notes,
            "seconds": round(time.monotonic() - start, 3)}
    key = bundle_key(args.kind, bundle, roles, fp16)
    if key is not None:
        EngineCache(args.cache).write_marker("ready", args.kind, key, info)
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
