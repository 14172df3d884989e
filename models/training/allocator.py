"""Keep freed memory in the training process instead of handing it back to the kernel.

glibc serves every block over its mmap threshold (128 KiB at first) with fresh pages
and trims the heap top on free, so each step's large tensors (STFT frames, their
gradients, the decoder's band signals) fault their pages in again: on the 2-core
machine, with the control loss on, 0.83 steps/s against 0.95 with glibc's thresholds
raised by environment (`benchmarks/bench_train.py`; the environment must be set before
the process starts, so a recipe cannot rely on it). Set here, at run time, it measured
0.85: the thresholds apply to what is allocated from then on. `mallopt` keeps blocks
up to 32 MiB (glibc's ceiling) on the heap and the heap untrimmed; elsewhere (musl,
macOS) nothing changes.
"""
import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc refuses more on 64-bit machines
TOP_PAD = 64 * 1024 * 1024


def keep_freed_memory() -> bool:
    """True when glibc took the settings."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return all([mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX) == 1,
                mallopt(M_TRIM_THRESHOLD, 2 ** 31 - 1) == 1,
                mallopt(M_TOP_PAD, TOP_PAD) == 1])
