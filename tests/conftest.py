"""Test-wide set-up: markers that skip where the machine lacks CUDA or the module's devices."""
import os
import shutil

import pytest


def _has_cuda() -> bool:
    if not shutil.which("nvidia-smi") and not os.path.exists("/dev/nvidia0"):
        return False
    try:
        import onnxruntime
    except ImportError:
        return False
    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def _on_module() -> bool:
    # The Jetson's GPIO character device and the panel's I2C bus.
    return os.path.exists("/dev/gpiochip0") and os.path.exists("/dev/i2c-1")


@pytest.fixture
def one_torch_thread():
    """torch on one thread for the duration of a test (modules opt in with
    `pytestmark = pytest.mark.usefixtures("one_torch_thread")`)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="no CUDA on this machine")
    skip_hw = pytest.mark.skip(reason="not running on the module (no /dev/gpiochip0, /dev/i2c-1)")
    cuda = _has_cuda()
    module = _on_module()
    for item in items:
        if "gpu" in item.keywords and not cuda:
            item.add_marker(skip_gpu)
        if "hardware" in item.keywords and not module:
            item.add_marker(skip_hw)
