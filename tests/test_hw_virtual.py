"""The virtual panel: patch player, headless frames vs. a reference image, pygame window."""
import os
import threading
import time

import pytest
from neurorave.common.toml_reader import tomllib
from neurorave.hardware.board import load_board
from neurorave.hardware.interfaces import ButtonPress, EncoderStep, GateEdge
from neurorave.hardware.panel import open_panel
from neurorave.hardware.patch import parse_patch
from neurorave.hardware.sim.headless import FrameRecorder, save_panel
from neurorave.hardware.sim.headless import main as headless_main
from neurorave.hardware.sim.player import PatchPlayer, play, run_in_thread
from neurorave.hardware.testpattern import test_pattern as make_test_pattern
from PIL import Image, ImageChops

REFERENCE = os.path.join(os.path.dirname(__file__), "data", "hw_test_pattern.png")

PATCH = """
[cv.1]
shape = "triangle"
rate = 1.0
range = [-5.0, 5.0]
[cv.3]
volts = -7.0
[gate.1]
clock = 4.0
[gate.2]
times = [0.3]
length = 0.1
[[encoder.turn]]
at = 0.2
steps = 2
[[encoder.press]]
at = 0.4
kind = "long"
"""


def _bits(image):
    return image.convert("L").point(lambda v: 255 if v else 0)


def _same(a, b):
    return ImageChops.difference(_bits(a), _bits(b)).getbbox() is None


@pytest.fixture()
def panel():
    with open_panel(load_board("sim")) as p:
        yield p


def test_player_drives_the_twins_with_patch_timing(panel):
    patch = parse_patch(tomllib.loads(PATCH), "p.toml")
    player = PatchPlayer(patch, panel, start_ns=1_000_000_000)
    for step in range(0, 51):
        player.advance(step * 0.01)
    volts = panel.cvs.read_volts()
    assert volts[0] == pytest.approx(5.0)            # triangle top at half a cycle
    assert volts[2] == -5.0                          # -7 V kept inside the knob's range
    events = panel.events.drain()
    gate1 = [(e.rising, e.t_ns) for e in events if isinstance(e, GateEdge) and e.gate == 0]
    assert gate1 == [(True, 1_000_000_000), (False, 1_125_000_000), (True, 1_250_000_000),
                     (False, 1_375_000_000), (True, 1_500_000_000)]
    assert EncoderStep(2, 1_200_000_000) in events
    assert ButtonPress("long", 1_400_000_000) in events
    assert GateEdge(1, True, 1_300_000_000) in events and GateEdge(1, False, 1_400_000_000) \
        in events


def test_gate_edges_reach_a_sink_from_the_posting_thread_and_the_rest_queues(panel):
    """With a gate sink (the daemon's voice), edges skip the queue the scheduler drains
    every turn; turns and presses still queue for the menu."""
    got = []
    panel.events.set_gate_sink(lambda gate, rising, t_ns: got.append(
        (gate, rising, t_ns, threading.get_ident())))
    patch = parse_patch(tomllib.loads(PATCH), "p.toml")
    player = PatchPlayer(patch, panel, start_ns=1_000_000_000)
    for step in range(0, 51):
        player.advance(step * 0.01)
    queued = panel.events.drain()
    assert not any(isinstance(e, GateEdge) for e in queued)
    assert EncoderStep(2, 1_200_000_000) in queued and ButtonPress("long", 1_400_000_000) \
        in queued
    assert [(g, r, t) for g, r, t, _ in got if g == 0][:3] == [
        (0, True, 1_000_000_000), (0, False, 1_125_000_000), (0, True, 1_250_000_000)]
    assert {who for *_, who in got} == {threading.get_ident()}


def test_a_player_thread_posts_each_edge_at_its_own_time(panel):
    """On its own thread the player wakes for each edge, not at the next CV step: edges
    arrive within a few ms of their patch time even with 50 ms CV steps."""
    seen = []
    panel.events.set_gate_sink(lambda gate, rising, t_ns: seen.append(
        (gate, rising, t_ns, time.monotonic_ns())))
    patch = parse_patch(tomllib.loads("[gate.1]\nclock = 8.0\n"), "p.toml")
    player = PatchPlayer(patch, panel)
    stop = threading.Event()
    thread = run_in_thread(player, stop, cv_period_s=0.05)
    time.sleep(0.6)
    stop.set()
    thread.join(1.0)
    rises = [(t_ns, at) for g, r, t_ns, at in seen if r]
    assert len(rises) >= 4
    late_ms = sorted((at - t_ns) / 1e6 for t_ns, at in rises)
    assert late_ms[0] >= 0 and late_ms[len(late_ms) // 2] < 10  # a 50 ms step: up to 50


def test_headless_test_pattern_matches_the_reference(panel, tmp_path):
    recorder = FrameRecorder(panel.display)
    panel.display.show(make_test_pattern(panel.display.size))
    paths = recorder.save(str(tmp_path / "frames"))
    assert [os.path.basename(p) for p in paths] == ["frame-00000.png"]
    with Image.open(paths[0]) as frame, Image.open(REFERENCE) as reference:
        assert frame.size == reference.size == (128, 64)
        assert _same(frame, reference)
        # The reference itself: border lit, corner mark lit, a dark pixel inside.
        assert reference.convert("L").getpixel((0, 0)) == 255
        assert reference.convert("L").getpixel((5, 5)) == 255
        assert reference.convert("L").getpixel((5, 11)) == 0
    # Rotated boards keep the drawing the same; luma's dummy device holds the glass view.
    panel.display.show(make_test_pattern(panel.display.size).rotate(180))
    assert not _same(panel.display.frame(), Image.open(REFERENCE))


def test_headless_gif_and_panel_view(panel, tmp_path):
    recorder = FrameRecorder(panel.display, max_frames=3)
    for i in range(3):
        panel.display.show(make_test_pattern().rotate(180 * i))
        panel.display.show(make_test_pattern().rotate(180 * i))     # unchanged: not kept
    panel.display.show(make_test_pattern().rotate(90 * 2 + 1))      # beyond max_frames
    panel.display.show(make_test_pattern())                          # the panel view's frame
    assert len(recorder.frames) == 3 and recorder.dropped == 2
    gif = str(tmp_path / "frames.gif")
    assert recorder.save(gif) == [gif]
    with Image.open(gif) as animation:
        assert animation.n_frames == 3
    panel.gates.set_gate(1, True)
    panel.led.set_colour("magenta")
    view = str(tmp_path / "panel.png")
    save_panel(panel, view)
    from neurorave.hardware.sim.panel_view import layout
    lay = layout(4, 2, (128, 64))
    with Image.open(view) as image:
        rgb = image.convert("RGB")
        # The OLED area shows the last frame at twice the size.
        left, top = lay.oled_box[:2]
        oled = rgb.crop(lay.oled_box).convert("L").resize((128, 64), Image.NEAREST)
        assert _same(oled, make_test_pattern())     # the last frame: rotated by 360
        assert rgb.getpixel((left, top)) != (0, 0, 0)
        # The encoder's ring shows the LED colour; gate 2's LED is lit, gate 1's is not.
        ex, ey = lay.encoder
        assert rgb.getpixel((ex, ey - lay.encoder_radius - 3)) == (255, 0, 255)
        g1, g2 = lay.gates
        assert rgb.getpixel((g2[0], g2[1] - lay.gate_radius - 11))[0] == 255
        assert rgb.getpixel((g1[0], g1[1] - lay.gate_radius - 11))[0] < 100


def test_headless_monitor_command(tmp_path):
    patch = tmp_path / "p.toml"
    patch.write_text(PATCH)
    out = tmp_path / "mon.gif"
    assert headless_main(["--patch", str(patch), "--seconds", "1", "--out", str(out)]) == 0
    with Image.open(out) as animation:
        assert animation.n_frames >= 5
    patch.write_text("[cv.1]\nvolts = 99\n")
    assert headless_main(["--patch", str(patch), "--seconds", "1", "--out", str(out)]) == 2


def test_play_in_real_time_paces_by_the_clock(panel):
    patch = parse_patch(tomllib.loads(PATCH), "p.toml")
    player = PatchPlayer(patch, panel)
    start = time.monotonic()
    play(player, 0.2, step_s=0.02)
    assert 0.18 <= time.monotonic() - start < 1.0
    assert player.events_played >= 3


def test_window_with_mouse_and_keys(panel, monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    pygame = pytest.importorskip("pygame")
    from neurorave.hardware.sim.window import DRAW_FPS, PanelWindow

    window = PanelWindow(panel)
    try:
        panel.display.show(make_test_pattern())
        key = pygame.KEYDOWN
        for event in [
            pygame.event.Event(key, key=pygame.K_2, mod=0),
            pygame.event.Event(key, key=pygame.K_UP, mod=pygame.KMOD_SHIFT),
            pygame.event.Event(pygame.KEYUP, key=pygame.K_UP, mod=pygame.KMOD_SHIFT),
            pygame.event.Event(key, key=pygame.K_UP, mod=0),
            pygame.event.Event(pygame.KEYUP, key=pygame.K_UP, mod=0),
            pygame.event.Event(key, key=pygame.K_z, mod=0),
            pygame.event.Event(key, key=pygame.K_RIGHT, mod=0),
            pygame.event.Event(key, key=pygame.K_SPACE, mod=0),
            pygame.event.Event(pygame.KEYUP, key=pygame.K_SPACE, mod=0),
            pygame.event.Event(pygame.KEYUP, key=pygame.K_z, mod=0),
            pygame.event.Event(pygame.MOUSEBUTTONDOWN, button=1, pos=window.layout.gates[1]),
            pygame.event.Event(pygame.MOUSEBUTTONUP, button=1, pos=window.layout.gates[1]),
            pygame.event.Event(pygame.MOUSEBUTTONDOWN, button=1, pos=window.layout.knobs[3]),
            pygame.event.Event(pygame.MOUSEMOTION, rel=(0, -20), pos=window.layout.knobs[3],
                               buttons=(1, 0, 0)),
            pygame.event.Event(pygame.MOUSEBUTTONUP, button=1, pos=window.layout.knobs[3]),
        ]:
            pygame.event.post(event)
        assert window.pump()
        assert window.selected == 3
        assert panel.cvs.read_volts() == pytest.approx([0.0, 1.1, 0.0, 1.0])
        events = panel.events.drain()
        gates = [(e.gate, e.rising) for e in events if isinstance(e, GateEdge)]
        assert gates == [(0, True), (0, False), (1, True), (1, False)]
        assert [e.steps for e in events if isinstance(e, EncoderStep)] == [1]
        time.sleep(0.35)                   # past the double-press window: a short press
        window.pump()
        assert [e.kind for e in panel.events.drain() if isinstance(e, ButtonPress)] == ["short"]
        # The OLED area of the window shows the frame.
        left, top = window.layout.oled_box[:2]
        assert tuple(window.screen.get_at((left + 1, top + 1)))[:3] != (0, 0, 0)
        assert tuple(window.screen.get_at((left + 11, top + 23)))[:3] == (0, 0, 0)
        # Pumped on every scheduler turn, it draws at most DRAW_FPS times a second.
        time.sleep(0.05)
        drawn = window.frames
        start = time.monotonic()
        while time.monotonic() - start < 0.2:
            window.pump()
        assert 1 <= window.frames - drawn <= 0.2 * DRAW_FPS + 2
        pygame.event.post(pygame.event.Event(pygame.QUIT))
        assert not window.pump()
        assert window.frames >= 2
    finally:
        window.close()


@pytest.fixture()
def window(panel, monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    pytest.importorskip("pygame")
    from neurorave.hardware.sim.window import PanelWindow

    window = PanelWindow(panel)
    yield window
    window.close()


def _press(pygame, key, copies=1, mod=0):
    """One press as a desktop may deliver it: KEYDOWN (`copies` times: an input method
    or SDL3's sdl2-compat doubles it), then KEYUP."""
    return ([pygame.event.Event(pygame.KEYDOWN, key=key, mod=mod)] * copies
            + [pygame.event.Event(pygame.KEYUP, key=key, mod=mod)])


@pytest.mark.parametrize("copies", [1, 2, 3])
def test_fifteen_fast_presses_of_up_move_a_cv_by_exactly_1_5_volts(window, panel, copies):
    import pygame

    for event in _press(pygame, pygame.K_3):
        pygame.event.post(event)
    for _ in range(15):                  # all inside one frame: as fast as can be
        for event in _press(pygame, pygame.K_UP, copies):
            pygame.event.post(event)
    window.pump()
    assert panel.cvs.read_volts()[2] == pytest.approx(1.5)
    for _ in range(15):                  # one press a frame, shift: 1 V each
        for event in _press(pygame, pygame.K_DOWN, copies, pygame.KMOD_SHIFT):
            pygame.event.post(event)
        window.pump()
    assert panel.cvs.read_volts()[2] == pytest.approx(-5.0)   # clamped at the knob's end


def test_random_duplicates_never_add_a_press(window, panel):
    import random

    import pygame

    rng = random.Random(24)
    for trial in range(40):
        panel.cvs.set_volts(0, 0.0)
        panel.events.drain()
        ups, rights = rng.randint(1, 20), rng.randint(1, 20)
        events = []
        for key, count in ((pygame.K_UP, ups), (pygame.K_RIGHT, rights)):
            for _ in range(count):
                down = [pygame.event.Event(pygame.KEYDOWN, key=key, mod=0)] * rng.randint(1, 3)
                up = [pygame.event.Event(pygame.KEYUP, key=key, mod=0)] * rng.randint(1, 2)
                events += down + up
        for event in events:
            pygame.event.post(event)
        window.pump()
        assert panel.cvs.read_volts()[0] == pytest.approx(min(0.1 * ups, 5.0)), trial
        steps = [e.steps for e in panel.events.drain() if isinstance(e, EncoderStep)]
        assert steps == [1] * rights, trial


def test_fast_pushes_each_count_once(window, panel):
    import pygame

    for _ in range(5):
        for event in _press(pygame, pygame.K_SPACE, copies=2):
            pygame.event.post(event)
    window.pump()
    time.sleep(0.35)                     # past the double-press window
    window.pump()
    kinds = [e.kind for e in panel.events.drain() if isinstance(e, ButtonPress)]
    assert kinds == ["double", "double", "short"]     # 2 + 2 + 1 presses


def test_losing_the_focus_lets_go_of_held_keys(window, panel):
    import pygame

    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_z, mod=0))
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_UP, mod=0))
    window.pump()
    assert panel.gates.levels()[0]
    pygame.event.post(pygame.event.Event(pygame.WINDOWFOCUSLOST))
    window.pump()
    assert not panel.gates.levels()[0]
    # Back in focus, the next press counts (it is not taken for a repeat).
    for event in _press(pygame, pygame.K_UP):
        pygame.event.post(event)
    window.pump()
    assert panel.cvs.read_volts()[0] == pytest.approx(0.2)


def test_knobs_show_what_they_drive(window, panel):
    from neurorave.hardware.sim.panel_view import render

    plain = render(panel, 0)
    labelled = render(panel, 0, labels=[("latent 0", ""), ("centroid", "1.8kHz"),
                                         ("f0", "A3 220Hz"), ("-", "")])
    x, y = window.layout.knobs[1]
    r = window.layout.knob_radius
    box = (x - 50, y + r + 18, x + 50, y + r + 46)
    assert plain.crop(box).getbbox() is None or \
        plain.crop(box).convert("L").getextrema()[1] < 60
    assert labelled.crop(box).convert("L").getextrema()[1] > 100
    window.set_cv_labels([("latent 0", ""), ("centroid", "1.8kHz")])
    window.draw()
    assert window.cv_labels[1] == ("centroid", "1.8kHz")
