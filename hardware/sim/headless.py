"""The headless virtual panel: play a patch and keep the OLED frames as PNG or GIF.

`FrameRecorder(display)` keeps every new frame shown on a (virtual) display with its
time (a frame equal to the previous one is not kept again); `save(out)` writes one
animated GIF when `out` ends in .gif, else a folder of numbered PNGs
(frame-00000.png...). `save_panel(panel, path)` writes the whole front panel as one PNG.

Run on its own, it shows the input monitor screen while a patch plays:

    python -m neurorave.hardware.sim.headless --patch P.toml --seconds 4 --out frames.gif
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, List, Optional, Tuple

from neurorave.hardware.interfaces import EncoderStep


class FrameRecorder:
    """Keeps frames that differ from the one before, at most `max_frames` of them
    (a long headless run must not fill the memory; `dropped` counts the rest)."""

    def __init__(self, display: Any, max_frames: int = 10000) -> None:
        self.frames: List[Tuple[float, Any]] = []
        self.max_frames = max_frames
        self.dropped = 0
        self._last_bytes: Optional[bytes] = None
        self._start = time.monotonic()
        display.add_listener(self._on_frame)

    def _on_frame(self, image: Any) -> None:
        data = image.tobytes()
        if data == self._last_bytes:
            return
        self._last_bytes = data
        if len(self.frames) >= self.max_frames:
            self.dropped += 1
            return
        self.frames.append((time.monotonic() - self._start, image.copy()))

    def save(self, out: str) -> List[str]:
        if not self.frames:
            raise ValueError("no frame was shown")
        if out.lower().endswith(".gif"):
            images = [image.convert("L") for _, image in self.frames]
            times = [t for t, _ in self.frames] + [self.frames[-1][0] + 0.1]
            durations = [max(20, int(1000 * (b - a))) for a, b in zip(times, times[1:])]
            images[0].save(out, save_all=True, append_images=images[1:], duration=durations,
                           loop=0)
            return [out]
        os.makedirs(out, exist_ok=True)
        paths = []
        for i, (_, image) in enumerate(self.frames):
            path = os.path.join(out, f"frame-{i:05d}.png")
            image.save(path)
            paths.append(path)
        return paths


def save_panel(panel: Any, path: str) -> None:
    from neurorave.hardware.sim.panel_view import render
    render(panel).save(path)


def run_monitor(board_name: str, patch_path: Optional[str], seconds: float, out: str,
                fps: float = 10.0) -> int:
    from neurorave.hardware.board import load_board
    from neurorave.hardware.panel import open_virtual_panel
    from neurorave.hardware.patch import load_patch
    from neurorave.hardware.sim.player import PatchPlayer, play
    from neurorave.hardware.testpattern import monitor

    board = load_board(board_name)
    panel = open_virtual_panel(board)
    recorder = FrameRecorder(panel.display)
    count = [0]
    ranges = [(cv.min_volts, cv.max_volts) for cv in board.cvs]
    player = PatchPlayer(load_patch(patch_path), panel) if patch_path else None
    next_frame = [0.0]

    def step(t: float) -> None:
        if player is not None:
            player.advance(t)
        count[0] += sum(e.steps for e in panel.events.drain() if isinstance(e, EncoderStep))
        if t >= next_frame[0]:
            next_frame[0] += 1.0 / fps
            panel.display.show(monitor(panel.display.size, panel.cvs.read_volts(), ranges,
                                       panel.gates.levels(), count[0],
                                       panel.encoder.is_pressed()))

    if player is not None:
        play(player, seconds, step_s=0.01, on_step=step, realtime=False)
    else:
        step(0.0)
    recorder.save(out)
    panel.close()
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    from neurorave.common.errors import UserError

    parser = argparse.ArgumentParser(description="headless virtual panel: OLED frames of "
                                                 "the input monitor while a patch plays")
    parser.add_argument("--board", default="sim")
    parser.add_argument("--patch", default=None)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--out", required=True, help="frames.gif or a folder for PNGs")
    args = parser.parse_args(argv)
    try:
        return run_monitor(args.board, args.patch, args.seconds, args.out)
    except UserError as exc:
        print(f"headless: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
