"""Where compiled GPU engines are kept, and how a stale or broken one is recognised.

A TensorRT engine is built on the machine that runs it and only fits that machine: the
same ONNX file, the same TensorRT (or ONNX Runtime) version, the same GPU. Building
takes minutes on a Jetson Nano, so it happens once and the result is kept in the state
directory (the caller passes the folder in: `firmware/` knows where the state lives,
this side does not import it). Layout under that folder (default: `engines/` in the
state directory, `default_cache_dir()`):

    trt/<role>-<onnx sha 12>-<key 16>.plan       a serialised native TensorRT engine
    trt/<role>-<onnx sha 12>-<key 16>.json       its key and the plan's sha256
    trt/timing-<key 16>.cache                    TensorRT's timing cache (per version + GPU)
    ort-trt/<onnx sha 12>-<key 16>/              ONNX Runtime's TensorRT provider: its own
                                                 engine and timing cache files for one graph
    ready/<kind>-<bundle key 16>.json            a background build finished: open it now
    failed/<kind>-<bundle key 16>.json           a background build failed: why (not retried
                                                 until the file is removed)

The key is the graph's sha256 (model.json holds one per graph), the runtime and its
version, the GPU's name and compute capability and the precision: change any of them
and the file name changes, so an old engine is never loaded for a new setting. A plan
is checked against the sha256 its sidecar holds before it is deserialised; anything
that does not match (a torn write, a hand edit, a plan from another key) is removed and
rebuilt, never trusted. Writes are atomic (temporary file, fsync, rename).
"""
import contextlib
import ctypes
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from typing import Any, Dict, List, Optional

CACHE_FORMAT = 1
ENGINE_CACHE_ENV = "NEURORAVE_ENGINE_CACHE"
# The same rule as firmware/state_files.py (default_state_dir), which this side may not
# import: tests check that the two agree.
_STATE_DIR_ENV = "NEURORAVE_STATE_DIR"
_SYSTEM_STATE_DIR = "/var/lib/neurorave"

# Compute capability of the Jetson boards, which have no nvidia-smi to ask.
JETSON_CAPABILITY = (("orin", "8.7"), ("xavier", "7.2"), ("tx2", "6.2"), ("nano", "5.3"),
                     ("tx1", "5.3"))


def default_cache_dir() -> str:
    """$NEURORAVE_ENGINE_CACHE, else `engines` in the state directory."""
    explicit = os.environ.get(ENGINE_CACHE_ENV)
    if explicit:
        return explicit
    state = os.environ.get(_STATE_DIR_ENV)
    if not state:
        if os.path.isdir(_SYSTEM_STATE_DIR) and os.access(_SYSTEM_STATE_DIR, os.W_OK | os.X_OK):
            state = _SYSTEM_STATE_DIR
        else:
            base = os.environ.get("XDG_STATE_HOME") or os.path.join(
                os.path.expanduser("~"), ".local", "state")
            state = os.path.join(base, "neurorave")
    return os.path.join(state, "engines")


class GpuInfo:
    """The GPU an engine is built for: its name and compute capability ("5.3")."""

    def __init__(self, name: str, capability: str, source: str):
        self.name = name
        self.capability = capability
        self.source = source  # how it was found out (cuda-python, pycuda, nvidia-smi, ...)

    def slug(self) -> str:
        return "".join(c if c.isalnum() else "-" for c in self.name.lower()).strip("-")

    def __repr__(self) -> str:
        return f"GpuInfo({self.name!r}, sm {self.capability}, from {self.source})"


_GPU_MEMO: List[Optional[GpuInfo]] = []


def gpu_info(refresh: bool = False) -> Optional[GpuInfo]:
    """The first CUDA device, or None where there is none (asked once per process)."""
    if _GPU_MEMO and not refresh:
        return _GPU_MEMO[0]
    found = None
    for probe in (_from_cuda_python, _from_pycuda, _from_nvidia_smi, _from_jetson):
        try:
            found = probe()
        except Exception:  # noqa: BLE001 - a probe that cannot answer is skipped
            found = None
        if found is not None:
            break
    _GPU_MEMO[:] = [found]
    return found


TENSORRT_DISTRIBUTIONS = ("tensorrt", "tensorrt-cu12", "tensorrt-cu11", "tensorrt-libs")
_TRT_MEMO: List[Optional[str]] = []


def tensorrt_version() -> Optional[str]:
    """TensorRT's version without importing it (the import loads its libraries, seconds
    and hundreds of MB: not in the daemon while it plays), None where it is missing:
    from the installed distribution's metadata, else from libnvinfer itself (JetPack's
    bindings come as a Debian package, not always with metadata)."""
    if _TRT_MEMO:
        return _TRT_MEMO[0]
    from importlib import metadata

    found = None
    for dist in TENSORRT_DISTRIBUTIONS:
        try:
            found = metadata.version(dist)
            break
        except metadata.PackageNotFoundError:
            continue
    for name in ([] if found else ["libnvinfer.so.10", "libnvinfer.so.8", "libnvinfer.so"]):
        try:
            number = int(ctypes.CDLL(name).getInferLibVersion())
        except (OSError, AttributeError):
            continue
        found = trt_version_text(number)
        break
    _TRT_MEMO[:] = [found]
    return found


def ort_runtime_version(ort_version: str) -> str:
    """ONNX Runtime's version with the TensorRT its TensorRT provider would build with."""
    return f"{ort_version}+tensorrt-{tensorrt_version() or 'none'}"


def trt_version_text(number: int) -> str:
    """libnvinfer's version number as text: 8201 is 8.2.1 (TensorRT 8: major x 1000),
    100300 is 10.3.0 (TensorRT 10 on: major x 10000)."""
    if number >= 10000:
        return f"{number // 10000}.{number // 100 % 100}.{number % 100}"
    return f"{number // 1000}.{number // 100 % 10}.{number % 100}"


def cuda_runtime() -> Any:
    """cuda-python's runtime module (`cuda.bindings.runtime` from 12.6, `cuda.cudart`
    before); ImportError where cuda-python is not installed."""
    try:
        from cuda.bindings import runtime
        return runtime
    except ImportError:
        from cuda import cudart
        return cudart


def _from_cuda_python() -> Optional[GpuInfo]:
    rt = cuda_runtime()
    err, count = rt.cudaGetDeviceCount()
    if int(err) != 0 or count < 1:
        return None
    err, props = rt.cudaGetDeviceProperties(0)
    if int(err) != 0:
        return None
    name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else props.name
    return GpuInfo(name.rstrip("\x00").strip(), f"{props.major}.{props.minor}", "cuda-python")


def _from_pycuda() -> Optional[GpuInfo]:
    import pycuda.driver as drv

    drv.init()
    if drv.Device.count() < 1:
        return None
    device = drv.Device(0)
    major, minor = device.compute_capability()
    return GpuInfo(device.name(), f"{major}.{minor}", "pycuda")


def _from_nvidia_smi() -> Optional[GpuInfo]:
    out = subprocess.run(["nvidia-smi", "--query-gpu=name,compute_cap", "--format=csv,noheader"],
                         capture_output=True, text=True, timeout=10)
    if out.returncode != 0 or not out.stdout.strip():
        return None
    name, _, cap = out.stdout.strip().splitlines()[0].rpartition(",")
    return GpuInfo(name.strip(), cap.strip(), "nvidia-smi")


def _from_jetson() -> Optional[GpuInfo]:
    with open("/proc/device-tree/model", "rb") as handle:
        model = handle.read().decode(errors="replace").rstrip("\x00").strip()
    if "jetson" not in model.lower():
        return None
    cap = next((c for word, c in JETSON_CAPABILITY if word in model.lower()), "?")
    return GpuInfo(model, cap, "device-tree")


def engine_key(onnx_sha256: str, runtime: str, runtime_version: str, gpu: Optional[GpuInfo],
               precision: str) -> Dict[str, Any]:
    """Everything an engine depends on: another value for any field, another engine."""
    return {"format": CACHE_FORMAT, "onnx_sha256": onnx_sha256.lower(), "runtime": runtime,
            "runtime_version": runtime_version,
            "gpu": gpu.name if gpu is not None else "none",
            "capability": gpu.capability if gpu is not None else "none",
            "precision": precision}


def key_digest(key: Dict[str, Any]) -> str:
    text = json.dumps(key, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def write_atomic(path: str, data: bytes) -> None:
    """`data` at `path`, whole or not at all (temporary file, fsync, rename)."""
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _read_json(path: str) -> Optional[Dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as handle:
            value = json.load(handle)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


class EngineCache:
    """One cache folder (see the module's docstring for its layout)."""

    def __init__(self, folder: str):
        self.folder = folder

    # ---- native TensorRT plans ----------------------------------------------------------
    def plan_path(self, role: str, key: Dict[str, Any]) -> str:
        return os.path.join(self.folder, "trt",
                            f"{role}-{key['onnx_sha256'][:12]}-{key_digest(key)}.plan")

    def load_plan(self, role: str, key: Dict[str, Any]) -> Optional[bytes]:
        """The plan stored for `key`, checked against its sidecar; None (and the broken
        files removed) when there is none or it does not match."""
        path = self.plan_path(role, key)
        side = _read_json(path[:-len(".plan")] + ".json")
        if side is None and not os.path.exists(path):
            return None
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError:
            data = None
        if side is None or data is None or side.get("key") != key \
                or side.get("plan_sha256") != hashlib.sha256(data).hexdigest():
            self.discard_plan(role, key)
            return None
        return data

    def store_plan(self, role: str, key: Dict[str, Any], plan: bytes,
                   extra: Optional[Dict[str, Any]] = None) -> str:
        path = self.plan_path(role, key)
        write_atomic(path, plan)
        side = dict(extra or {}, key=key, plan_sha256=hashlib.sha256(plan).hexdigest())
        write_atomic(path[:-len(".plan")] + ".json", json.dumps(side, indent=1).encode())
        return path

    def discard_plan(self, role: str, key: Dict[str, Any]) -> None:
        path = self.plan_path(role, key)
        for name in (path, path[:-len(".plan")] + ".json"):
            with contextlib.suppress(OSError):
                os.unlink(name)

    def timing_path(self, key: Dict[str, Any]) -> str:
        """One timing cache per runtime version and GPU, shared by every model (it holds
        layer timings, which carry over between models)."""
        shared = {k: key[k] for k in ("format", "runtime", "runtime_version", "gpu",
                                      "capability")}
        return os.path.join(self.folder, "trt", f"timing-{key_digest(shared)}.cache")

    def load_timing(self, key: Dict[str, Any]) -> bytes:
        try:
            with open(self.timing_path(key), "rb") as handle:
                return handle.read()
        except OSError:
            return b""

    def store_timing(self, key: Dict[str, Any], data: bytes) -> None:
        if data:
            write_atomic(self.timing_path(key), data)

    def discard_timing(self, key: Dict[str, Any]) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.timing_path(key))

    # ---- ONNX Runtime's TensorRT provider --------------------------------------------
    def ort_trt_dir(self, key: Dict[str, Any]) -> str:
        """The TensorRT provider's engine folder for one graph (ONNX Runtime names the
        files inside; the folder's name carries our key, so a new version starts empty)."""
        return os.path.join(self.folder, "ort-trt",
                            f"{key['onnx_sha256'][:12]}-{key_digest(key)}")

    def ort_timing_dir(self, key: Dict[str, Any]) -> str:
        shared = {k: key[k] for k in ("format", "runtime", "runtime_version", "gpu",
                                      "capability")}
        return os.path.join(self.folder, "ort-trt", f"timing-{key_digest(shared)}")

    def discard_dir(self, path: str) -> None:
        shutil.rmtree(path, ignore_errors=True)

    # ---- background builds: done, or failed -----------------------------------------
    def marker_path(self, state: str, kind: str, key: Dict[str, Any]) -> str:
        return os.path.join(self.folder, state, f"{kind}-{key_digest(key)}.json")

    def read_marker(self, state: str, kind: str, key: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        found = _read_json(self.marker_path(state, kind, key))
        if found is None or found.get("key") != key:
            return None
        return found

    def write_marker(self, state: str, kind: str, key: Dict[str, Any],
                     info: Dict[str, Any]) -> str:
        path = self.marker_path(state, kind, key)
        write_atomic(path, json.dumps(dict(info, key=key), indent=1).encode())
        return path

    def clear_marker(self, state: str, kind: str, key: Dict[str, Any]) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.marker_path(state, kind, key))

    def summary(self) -> Dict[str, Any]:
        """What the folder holds (for `neurorave doctor`)."""
        plans = failed = ready = size = 0
        for root, _dirs, files in os.walk(self.folder):
            for name in files:
                with contextlib.suppress(OSError):
                    size += os.path.getsize(os.path.join(root, name))
                top = os.path.relpath(root, self.folder).split(os.sep)[0]
                plans += name.endswith(".plan")
                failed += top == "failed" and name.endswith(".json")
                ready += top == "ready" and name.endswith(".json")
        return {"folder": self.folder, "plans": plans, "ready": ready, "failed": failed,
                "megabytes": size / 1e6}

    def failures(self) -> List[Dict[str, Any]]:
        folder = os.path.join(self.folder, "failed")
        found = []
        for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            info = _read_json(os.path.join(folder, name))
            if info is not None:
                found.append(dict(info, path=os.path.join(folder, name)))
        return found
