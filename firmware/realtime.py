"""Real-time privileges, asked for and never required.

The systemd unit grants LimitRTPRIO and LimitMEMLOCK on the module; a laptop user
usually has neither. Each request returns None when granted, or the reason it was
refused, so the daemon can say so once and carry on.
"""
import ctypes
import ctypes.util
import os
from typing import Optional

VOICE_PRIORITY = 70   # under JACK's and the ALSA IRQ threads' usual 80-95
MCL_CURRENT, MCL_FUTURE = 1, 2


def realtime_thread(priority: int = VOICE_PRIORITY) -> Optional[str]:
    """SCHED_FIFO for the calling thread."""
    setter = getattr(os, "sched_setscheduler", None)
    if setter is None:
        return "SCHED_FIFO is not available on this system"
    try:
        setter(0, os.SCHED_FIFO, os.sched_param(priority))
    except OSError as exc:
        return f"SCHED_FIFO refused ({exc.strerror}); raise LimitRTPRIO / rtprio"
    return None


M_ARENA_MAX = -8
THREAD_STACK = 1 << 20  # Python threads here need far less than the 8 MiB default


def _libc() -> Optional[ctypes.CDLL]:
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name, use_errno=True) if name else None


def lean_memory() -> None:
    """Before any thread starts: locked memory is resident memory, so keep what gets
    mapped small: two malloc arenas (not 8 per core, 64 MiB each) and 1 MiB stacks."""
    import threading

    threading.stack_size(THREAD_STACK)
    libc = _libc()
    if libc is not None and hasattr(libc, "mallopt"):
        libc.mallopt(M_ARENA_MAX, 2)


def lock_memory() -> Optional[str]:
    """mlockall: no page of the process is swapped out or faulted in mid-callback."""
    libc = _libc()
    if libc is None:
        return "mlockall: no C library found"
    if libc.mlockall(MCL_CURRENT | MCL_FUTURE) != 0:
        return f"mlockall refused ({os.strerror(ctypes.get_errno())}); raise LimitMEMLOCK"
    return None
