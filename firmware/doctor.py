"""`neurorave doctor`: which inference engines this machine can run, and why not.

One line per engine kind (trt, ort-gpu, ort-cpu): `yes` with what it runs on, or `no`
with the reason and what to install. Then the engine cache (engines/ in the state
directory): what it holds, and any build that failed (not retried until its file is
removed). It looks and opens nothing heavy: no engine is built. Exit status 0 always
(a laptop without a GPU is a healthy machine).
"""
import importlib.util
from typing import Any, List, Optional

from neurorave.firmware.state_files import default_state_dir


def _trt_line() -> str:
    from neurorave.models.runtime.engine_cache import gpu_info

    if importlib.util.find_spec("tensorrt") is None:
        return ("trt: no - the tensorrt Python package is not installed (on a Jetson it comes "
                "with JetPack as python3-libnvinfer; install.sh reaches it with "
                "--system-site-packages, and its Python version must be the venv's)")
    try:
        import tensorrt
        version = tensorrt.__version__
    except Exception as exc:  # noqa: BLE001 - a broken install: say what it said
        return f"trt: no - tensorrt is installed but does not import ({exc})"
    gpu = gpu_info()
    if gpu is None:
        return f"trt: no - TensorRT {version} is installed but no CUDA GPU answers"
    buffers = [name for name, module in (("cuda-python", "cuda"), ("pycuda", "pycuda"))
               if importlib.util.find_spec(module) is not None]
    if not buffers:
        return (f"trt: no - TensorRT {version} and {gpu.name} are here, but no GPU memory "
                "library: pip install cuda-python (CUDA 11+) or pycuda (JetPack 4.6)")
    return (f"trt: yes - TensorRT {version} on {gpu.name} (sm {gpu.capability}), buffers "
            f"through {buffers[0]}; not yet run on real hardware, tools/gpu-check.sh checks it")


def _ort_lines() -> List[str]:
    from neurorave.models.runtime.engine_cache import gpu_info

    if importlib.util.find_spec("onnxruntime") is None:
        return ["ort-gpu: no - onnxruntime is not installed",
                "ort-cpu: no - onnxruntime is not installed (pip install onnxruntime)"]
    import onnxruntime

    version = onnxruntime.__version__
    offered = onnxruntime.get_available_providers()
    gpu_providers = [p for p in offered
                     if p in ("TensorrtExecutionProvider", "CUDAExecutionProvider")]
    gpu = gpu_info()
    if not gpu_providers:
        gpu_line = (f"ort-gpu: no - onnxruntime {version} here is CPU-only (offers "
                    f"{', '.join(offered)}); on a Jetson install NVIDIA's JetPack wheel: "
                    "systemd/install.sh --ort-wheel PATH|URL")
    elif gpu is None:
        gpu_line = (f"ort-gpu: no - onnxruntime {version} offers {', '.join(gpu_providers)} "
                    "but no CUDA GPU answers (it would fall back to the CPU)")
    else:
        gpu_line = (f"ort-gpu: yes - onnxruntime {version} with {', '.join(gpu_providers)} on "
                    f"{gpu.name} (sm {gpu.capability}); which provider runs each node: "
                    "neurorave bench")
    return [gpu_line, f"ort-cpu: yes - onnxruntime {version}"]


def report(cache_dir: Optional[str] = None) -> List[str]:
    import os

    from neurorave.models.runtime.engine_cache import EngineCache

    lines = [_trt_line()] + _ort_lines()
    cache = EngineCache(cache_dir or os.path.join(default_state_dir(), "engines"))
    summary = cache.summary()
    lines.append(f"engine cache: {summary['folder']} ({summary['plans']} TensorRT plans, "
                 f"{summary['ready']} built, {summary['failed']} failed, "
                 f"{summary['megabytes']:.1f} MB)")
    for failure in cache.failures():
        lines.append(f"  failed build: {failure.get('reason')} ({failure.get('bundle', '?')}); "
                     f"remove {failure['path']} to try again")
    return lines


def main(args: Any) -> int:
    for line in report(getattr(args, "cache", None)):
        print(line)
    return 0
