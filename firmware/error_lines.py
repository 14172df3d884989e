"""The daemon's lines on the stderr it started with, even while fd 2 points elsewhere."""
import os
import sys
import weakref


class ErrorLines:
    """Writes `prefix + text` lines to a copy of fd 2 taken at start.

    sounddevice points fd 2 at /dev/null while it re-scans devices (`audio_out.
    rescan_devices`, every few seconds while a device is lost) to hide ALSA's probe
    chatter; a line another thread wrote meanwhile would vanish. Writing to a copy of
    fd 2 taken at start needs no lock that the scheduler could wait on behind a slow
    re-scan, and holds whoever else points fd 2 elsewhere."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        try:
            self._fd = os.dup(2)
        except OSError:
            self._fd = -1  # no fd 2 at all: print() as before
        else:
            weakref.finalize(self, os.close, self._fd)

    def __call__(self, text: str) -> None:
        line = f"{self.prefix}{text}"
        if self._fd < 0:
            print(line, file=sys.stderr, flush=True)
            return
        data = (line + "\n").encode("utf-8", "replace")
        try:
            while data:
                data = data[os.write(self._fd, data):]
        except OSError:
            pass  # stderr closed or full: the stats file still has the errors
