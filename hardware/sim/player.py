"""Plays a patch file on the virtual panel's twins, in real time or stepped by a caller.

`PatchPlayer(patch, panel).advance(t)` brings the panel to patch time `t` seconds:
patched CVs take their volts at `t`; gate edges, encoder turns and presses between
the previous call and `t` are posted with timestamps `start_ns + t_event * 1e9`, so
events keep their patch timing even when the caller steps coarsely (the daemon's
headless mode calls it from its own loop; `play` runs it on its own).
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable, Optional

from neurorave.hardware.errors import HardwareError
from neurorave.hardware.patch import Patch


class PatchPlayer:
    def __init__(self, patch: Patch, panel: Any, start_ns: Optional[int] = None) -> None:
        if not getattr(panel, "virtual", False):
            raise HardwareError("patch", "a patch plays on the virtual board (--board sim)")
        patch.check_fits(len(panel.cvs.names), len(panel.gates.names))
        self.patch = patch
        self.panel = panel
        self.start_ns = time.monotonic_ns() if start_ns is None else start_ns
        self.t = -1e-9          # so events at exactly 0 are played by advance(0)
        self.events_played = 0

    def advance(self, t: float) -> None:
        if t < self.t:
            return
        for index in self.patch.cvs:
            volts = self.patch.cv_volts(index, t)
            if volts is not None:
                self.panel.cvs.set_volts(index, volts)
        for event in self.patch.events(self.t, t):
            t_ns = self.start_ns + int(round(event.t * 1e9))
            if event.kind == "gate":
                self.panel.gates.set_gate(event.jack, event.value, t_ns)
            elif event.kind == "turn":
                self.panel.encoder.turn(event.value, t_ns)
            else:
                self.panel.encoder.press(event.value, t_ns)
            self.events_played += 1
        self.t = t


def run_in_thread(player: PatchPlayer, stop: threading.Event,
                  cv_period_s: float = 0.005) -> threading.Thread:
    """Play the patch on a thread of its own, as the panel's jacks would: CVs every
    `cv_period_s`, and each gate edge, turn or press woken for at its own time (within
    the sleep's jitter), not at the next step of whoever polls."""
    begin = (player.start_ns) / 1e9

    def clock() -> None:
        while not stop.is_set():
            t = time.monotonic() - begin
            player.advance(t)
            upcoming = player.patch.events(t, t + cv_period_s)
            wake = upcoming[0].t if upcoming else t + cv_period_s
            delay = begin + wake - time.monotonic()
            if delay > 0:
                stop.wait(delay)

    thread = threading.Thread(target=clock, name="patch-player", daemon=True)
    thread.start()
    return thread


def play(player: PatchPlayer, seconds: float, step_s: float = 0.01,
         on_step: Optional[Callable[[float], Any]] = None, realtime: bool = True) -> None:
    """Advance the player to `seconds` in steps, pacing by the clock when `realtime`."""
    steps = max(1, int(round(seconds / step_s)))
    begin = time.monotonic()
    for i in range(steps + 1):
        t = min(seconds, i * step_s)
        if realtime:
            delay = begin + t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        player.advance(t)
        if on_step is not None:
            on_step(t)
