"""The virtual front panel in a pygame window, played with mouse and keyboard.

    window = PanelWindow(panel)          # panel = open_panel(load_board("sim"))
    while window.pump():                 # one frame: input, timers, drawing
        ...                              # the daemon's own work (or asyncio.sleep)
    window.close()

`pump()` must run on the thread that created the window (SDL wants the main thread
on macOS): the daemon calls it from its main-thread loop about 30 times a second.
`run(seconds)` is the same loop on its own. Keys (also drawn on the panel):

    1 2 3 4        pick a CV knob            up / down     +-0.1 V (shift: +-1 V)
    drag / wheel   turn the knob under the mouse
    Z / X          hold gate 1 / 2 (or hold the mouse on a gate jack)
    left / right   turn the encoder (or the wheel over it)
    space, enter   push the encoder (or click it); hold for a long press
    esc            quit

Each key acts once per press, on its way down: a KEYDOWN for a key already down is
dropped. Some desktops deliver one press as two KEYDOWNs (SDL with an input method
such as IBus, fcitx or uim on X11; SDL3's sdl2-compat): each press moved a CV twice.
Losing the focus lets go of every key held (no KEYUP comes for those).

With SDL_VIDEODRIVER=dummy it runs without a screen (the tests do).
"""
from __future__ import annotations

import sys
import time
from typing import Any, List, Optional, Sequence, Set, Tuple

from neurorave.hardware.sim.panel_view import layout, render

KNOB_VOLTS_PER_PIXEL = 0.05
GATE_KEYS = ("z", "x")
DRAW_FPS = 30.0  # the window redraws at most this often (the OLED itself runs ~17 fps)


def _inside(point: Tuple[int, int], centre: Tuple[int, int], radius: int) -> bool:
    return (point[0] - centre[0]) ** 2 + (point[1] - centre[1]) ** 2 <= radius ** 2


class PanelWindow:
    def __init__(self, panel: Any, title: str = "NeuroRave - virtual panel") -> None:
        import pygame

        if not getattr(panel, "virtual", False):
            raise ValueError("the window plays the virtual board only")
        self.pygame = pygame
        self.panel = panel
        self.selected = 0
        self._dragging: Optional[int] = None
        self._mouse_gate: Optional[int] = None
        self._keys_held: Set[int] = set()
        self.cv_labels: List[Tuple[str, str]] = []
        pygame.display.init()
        pygame.font.init()
        self.layout = layout(len(panel.cvs.names), len(panel.gates.names), panel.display.size)
        self.screen = pygame.display.set_mode(self.layout.size)
        pygame.display.set_caption(title)
        self.frames = 0
        self._drawn_at = float("-inf")
        self.open = True

    # --- input ---------------------------------------------------------------------
    def _nudge(self, index: int, volts: float) -> None:
        current = self.panel.cvs.read_volts()[index]
        self.panel.cvs.set_volts(index, current + volts)

    def _knob_at(self, pos: Tuple[int, int]) -> Optional[int]:
        for i, centre in enumerate(self.layout.knobs):
            if _inside(pos, centre, self.layout.knob_radius + 4):
                return i
        return None

    def _gate_at(self, pos: Tuple[int, int]) -> Optional[int]:
        for i, centre in enumerate(self.layout.gates):
            if _inside(pos, centre, self.layout.gate_radius + 6):
                return i
        return None

    def set_cv_labels(self, labels: Sequence[Tuple[str, str]]) -> None:
        """Per knob (what it drives, that value's text), drawn with the knob."""
        self.cv_labels = [(str(a), str(b)) for a, b in labels]

    def _let_go(self) -> None:
        """Release what the held keys hold: their KEYUPs went to another window."""
        pg = self.pygame
        for key in sorted(self._keys_held):
            self.handle(pg.event.Event(pg.KEYUP, key=key, mod=0))
        self._keys_held.clear()

    def handle(self, event: Any) -> None:
        pg = self.pygame
        panel = self.panel
        if event.type == pg.QUIT:
            self.open = False
        elif event.type == getattr(pg, "WINDOWFOCUSLOST", None):
            self._let_go()
        elif event.type in (pg.KEYDOWN, pg.KEYUP):
            down = event.type == pg.KEYDOWN
            # One action per press: only the key's up -> down change counts.
            if down == (event.key in self._keys_held):
                return
            if down:
                self._keys_held.add(event.key)
            else:
                self._keys_held.discard(event.key)
            name = pg.key.name(event.key)
            if down and event.key == pg.K_ESCAPE:
                self.open = False
            elif down and name in ("1", "2", "3", "4") and int(name) <= len(panel.cvs.names):
                self.selected = int(name) - 1
            elif down and event.key in (pg.K_UP, pg.K_DOWN):
                step = 1.0 if event.mod & pg.KMOD_SHIFT else 0.1
                self._nudge(self.selected, step if event.key == pg.K_UP else -step)
            elif name in GATE_KEYS and GATE_KEYS.index(name) < len(panel.gates.names):
                panel.gates.set_gate(GATE_KEYS.index(name), down)
            elif down and event.key in (pg.K_LEFT, pg.K_RIGHT):
                panel.encoder.turn(1 if event.key == pg.K_RIGHT else -1)
            elif event.key in (pg.K_SPACE, pg.K_RETURN):
                panel.encoder.set_switch(down)
        elif event.type == pg.MOUSEBUTTONDOWN and event.button == 1:
            knob = self._knob_at(event.pos)
            gate = self._gate_at(event.pos)
            if knob is not None:
                self.selected = knob
                self._dragging = knob
            elif gate is not None:
                self._mouse_gate = gate
                panel.gates.set_gate(gate, True)
            elif _inside(event.pos, self.layout.encoder, self.layout.encoder_radius):
                panel.encoder.set_switch(True)
        elif event.type == pg.MOUSEBUTTONUP and event.button == 1:
            self._dragging = None
            if self._mouse_gate is not None:
                panel.gates.set_gate(self._mouse_gate, False)
                self._mouse_gate = None
            if panel.encoder.is_pressed():
                panel.encoder.set_switch(False)
        elif event.type == pg.MOUSEMOTION and self._dragging is not None:
            self._nudge(self._dragging, -event.rel[1] * KNOB_VOLTS_PER_PIXEL)
        elif event.type == pg.MOUSEWHEEL:
            pos = pg.mouse.get_pos()
            knob = self._knob_at(pos)
            if knob is not None:
                self._nudge(knob, 0.1 * event.y)
            elif _inside(pos, self.layout.encoder, self.layout.encoder_radius + 6):
                panel.encoder.turn(int(event.y))

    # --- the frame -------------------------------------------------------------------
    def draw(self) -> None:
        image = render(self.panel, self.selected, labels=self.cv_labels)
        # frombytes is pygame 2.1.3+; fromstring is its older name.
        convert = getattr(self.pygame.image, "frombytes", None) or self.pygame.image.fromstring
        surface = convert(image.tobytes(), image.size, "RGB")
        self.screen.blit(surface, (0, 0))
        self.pygame.display.flip()
        self.frames += 1

    def pump(self) -> bool:
        """Handle waiting input, run the button timers, draw (at most DRAW_FPS times a
        second, at once after input); False once closed. The daemon pumps on every
        scheduler turn (every few ms): drawing each time cost half a core."""
        if not self.open:
            return False
        events = self.pygame.event.get()
        for event in events:
            self.handle(event)
        self.panel.encoder.tick()
        now = time.monotonic()
        if self.open and (events or now - self._drawn_at >= 1.0 / DRAW_FPS):
            self._drawn_at = now
            self.draw()
        return self.open

    def run(self, seconds: Optional[float] = None, fps: float = 30.0,
            player: Any = None) -> None:
        """Play until the window is closed (or `seconds` pass), with an optional patch."""
        start = time.monotonic()
        while self.pump():
            elapsed = time.monotonic() - start
            if player is not None:
                player.advance(elapsed)
            if seconds is not None and elapsed >= seconds:
                break
            time.sleep(max(0.0, 1.0 / fps - (time.monotonic() - start - elapsed)))

    def close(self) -> None:
        self.open = False
        self.pygame.display.quit()


def main(argv: Optional[List[str]] = None) -> int:
    """Try the panel without the daemon: the OLED shows the input monitor."""
    import argparse

    from neurorave.hardware.board import load_board
    from neurorave.hardware.interfaces import EncoderStep
    from neurorave.hardware.panel import open_virtual_panel
    from neurorave.hardware.patch import load_patch
    from neurorave.hardware.sim.player import PatchPlayer
    from neurorave.hardware.testpattern import monitor

    parser = argparse.ArgumentParser(description="the virtual panel, showing its inputs")
    parser.add_argument("--patch", default=None)
    parser.add_argument("--seconds", type=float, default=None)
    args = parser.parse_args(argv)
    board = load_board("sim")
    panel = open_virtual_panel(board)
    player = PatchPlayer(load_patch(args.patch), panel) if args.patch else None
    window = PanelWindow(panel)
    ranges = [(cv.min_volts, cv.max_volts) for cv in board.cvs]
    count = 0
    start = time.monotonic()
    while window.pump():
        elapsed = time.monotonic() - start
        if player is not None:
            player.advance(elapsed)
        count += sum(e.steps for e in panel.events.drain() if isinstance(e, EncoderStep))
        panel.led.set_colour("green" if any(panel.gates.levels()) else "blue")
        panel.display.show(monitor(panel.display.size, panel.cvs.read_volts(), ranges,
                                   panel.gates.levels(), count, panel.encoder.is_pressed()))
        if args.seconds is not None and elapsed >= args.seconds:
            break
        time.sleep(1 / 30)
    window.close()
    panel.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
