"""The voice: controls to frames (VoiceModel), the voice thread's fades and model swaps,
and `neurorave render` (the same voice offline). Runs a real streaming ONNX bundle in
ONNX Runtime (the toy bundle: a causal FIR over latent frames)."""
import json
import time

import numpy as np
import pytest
import soundfile
from neurorave.firmware.cli import main as cli_main
from neurorave.firmware.controls import ControlSettings
from neurorave.firmware.render import render
from neurorave.firmware.ring import AudioRing
from neurorave.firmware.stats import Stats
from neurorave.firmware.voice import (
    GATE_FADE_S,
    LIMIT_KNEE,
    ControlInputs,
    QueuedFrame,
    Voice,
    VoiceModel,
    fade,
    output_stage,
)
from neurorave.hardware.patch import parse_patch
from toy_bundle import write_toy_bundle

PATCH = {"seconds": 2.0,
         "cv": {"1": {"shape": "sine", "rate": 1.0, "range": [-3.0, 3.0]},
                "2": {"shape": "triangle", "rate": 2.0, "range": [-5.0, 5.0]}},
         "gate": {"1": {"clock": 4.0}, "2": {"times": [0.5, 1.5]}}}


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    root = tmp_path_factory.mktemp("voice")
    a = write_toy_bundle(str(root / "a"), frame=64, name="a")
    b = write_toy_bundle(str(root / "b"), frame=128, sample_rate=24000, name="b")
    return a, b


def _model(path, rate=48000, seed=0):
    return VoiceModel(path, rate, "ort-cpu", settings=ControlSettings(), seed=seed)


def test_cvs_move_the_attributes_and_latent_dim_0(bundles):
    model = _model(bundles[0])
    still = [model.render(ControlInputs([0, 0, 0, 0])) for _ in range(40)]
    # 16 kHz -> 48 kHz: three device samples per model sample once soxr's delay is filled.
    assert all(len(b) == 64 * 3 for b in still[10:])
    assert 40 * 192 - 200 < sum(len(b) for b in still) <= 40 * 192
    rest = model.last_snapshot
    for _ in range(40):
        model.render(ControlInputs([4.0, 4.0, -4.0, 0]))
    moved = model.last_snapshot
    # CV2 -> attribute 0 up, CV3 -> attribute 1 down (default assignment), CV1 -> latent 0.
    assert moved.attributes[0] > rest.attributes[0] + 0.2
    assert moved.attributes[1] < rest.attributes[1] - 0.2
    assert moved.latent0 > 1.0 and model.decoder.inputs["z"][0, 0, 0] > 0.5


def test_gate1_starts_a_new_phrase_and_the_seed_decides_it(bundles):
    def play(seed, gate_at):
        model = _model(bundles[0], seed=seed)
        out, zs = [], []
        for f in range(60):
            out.append(model.render(ControlInputs([0, 0, 0, 0], gate1_rise=(f == gate_at))))
            zs.append(model.decoder.inputs["z"][0, :, 0].copy())
        return np.concatenate(out), np.array(zs)

    a, za = play(1, 20)
    b, zb = play(1, 20)
    c, zc = play(2, 20)
    quiet, zq = play(1, 999)
    assert np.array_equal(a, b)                                  # deterministic
    assert np.array_equal(za[:20], zq[:20])                      # nothing before the gate
    assert np.abs(za[40, 1:] - zq[40, 1:]).max() > 0.1           # a new point after it
    assert np.abs(za[40] - zc[40]).max() > 0.05                  # another seed, another point
    assert np.abs(za[21] - za[20]).max() < np.abs(za[40] - za[20]).max()  # it glides


def test_fade_is_a_smooth_ramp():
    ones = np.ones(100, np.float32)
    up, down = fade(ones, True, 50), fade(ones, False, 50)
    assert 0 < up[0] < 0.01 and np.all(np.diff(up[:50]) > 0) and np.all(up[50:] == 1)
    assert down[0] > 0 and down[49] < 0.01 and np.all(down[50:] == 0)


def test_the_output_stage_passes_the_voice_up_to_its_knee_then_rounds_peaks_off():
    x = np.linspace(-4.0, 4.0, 80001).astype(np.float32)
    y = output_stage(x, 0.5)
    quiet = np.abs(x * 0.5) <= LIMIT_KNEE
    assert np.array_equal(y[quiet], (x * np.float32(0.5))[quiet])  # unchanged: no colour
    assert np.abs(y).max() <= 1.0 and np.abs(y).max() > 0.99       # toward full scale
    assert np.all(np.diff(y) >= 0)                                  # no fold-back
    assert np.allclose(y, -y[::-1])                                 # symmetric
    # No corner at the knee: the slope just above it is still 1 (a hard clip's is 0
    # at full scale), and the curve bends smoothly down from there.
    step = float(x[1] - x[0]) * 0.5
    slope = np.diff(y) / step
    just_over = np.flatnonzero(x[1:] * 0.5 > LIMIT_KNEE)[0]
    assert slope[just_over] == pytest.approx(1.0, abs=1e-2)
    assert np.all(slope[np.abs(x[1:] * 0.5) > 1.2] < 0.5)
    assert output_stage(np.zeros(4, np.float32), 0.8).dtype == np.float32


def test_render_at_a_high_level_is_limited_not_hard_clipped(bundles):
    patch = parse_patch(PATCH, "p.toml")
    soft, _ = render(bundles[0], patch, 2.0, seed=3, level=1.0)
    level = 1.3 / float(np.abs(soft).max())  # peaks 30 % over full scale
    hot, _ = render(bundles[0], patch, 2.0, seed=3, level=level)
    over = np.abs(soft) * level >= 1.0
    assert over.sum() > 10                    # a hard clip would flatten these to 1.0
    assert np.abs(hot).max() < 1.0
    assert np.all(np.abs(hot[over]) > LIMIT_KNEE)  # rounded off, not squashed
    # The rest passes exactly as the level scales it.
    quiet = np.abs(soft) * level <= LIMIT_KNEE
    assert quiet.sum() > 1000
    assert np.allclose(hot[quiet], soft[quiet] * level, rtol=1e-5, atol=1e-7)


def _drain(ring, seconds):
    """Play the ring like an audio callback would, in 256-sample blocks."""
    out = []
    block = np.zeros(256, np.float32)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ring.available() >= 256:
            ring.read_into(block)
            out.append(block.copy())
        else:
            time.sleep(0.001)
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def test_the_voice_thread_fades_in_swaps_without_a_jump_and_fades_out(bundles):
    ring = AudioRing(8192)
    voice = Voice(ring, 48000, Stats(), lookahead=512, level=1.0)
    voice.start()
    try:
        voice.set_model(_model(bundles[0]))
        voice.volts = [2.0, 3.0, 0.0, 0.0]
        first = _drain(ring, 0.4)
        boundary = ring.total_written
        voice.set_model(_model(bundles[1]))     # another rate and frame size
        second = _drain(ring, 0.4)
        assert voice.model is not None and voice.model.name == "b"
    finally:
        assert voice.stop(timeout=2.0)
    tail = np.zeros(ring.available(), np.float32)
    ring.read_into(tail)
    audio = np.concatenate([first, second, tail])
    peak = np.abs(audio).max()
    assert peak > 0.01
    # Fade-in: the first sample is near silence, however loud the model.
    start = np.flatnonzero(np.abs(audio) > 0)[0]
    assert abs(audio[start]) < 0.05 * peak
    # The swap: the old model fades to silence, then the new one fades in.
    swap = voice.swaps[-1]
    assert swap >= boundary - ring.capacity
    assert np.abs(audio[swap - 8:swap + 2]).max() < 0.05 * peak
    # The stop: the last samples written fall to silence.
    assert len(audio) == ring.total_written
    assert np.abs(audio[-4:]).max() < 1e-3 * peak + 1e-9
    assert voice.bad_frames == 0


def test_a_failing_frame_becomes_silence_and_the_voice_plays_on(bundles):
    ring = AudioRing(8192)
    errors = []
    stats = Stats()
    voice = Voice(ring, 48000, stats, lookahead=512, on_error=errors.append)
    model = _model(bundles[0])
    real_render, calls = model.render, [0]

    def flaky(inputs):  # the engine fails on every third call
        calls[0] += 1
        if calls[0] % 3 == 0:
            raise RuntimeError("engine hiccup")
        return real_render(inputs)

    model.render = flaky
    voice.set_model(model)
    voice.start()
    try:
        audio = _drain(ring, 0.3)
    finally:
        voice.stop()
    assert voice.bad_frames >= 2 and "engine hiccup" in errors[0]
    # Every third call fails, and a gate's twin or a frame rendered again takes calls
    # too (more of them on a busy machine), so up to every other frame may fail: the
    # voice plays on through each.
    assert voice.frames >= 2 * voice.bad_frames - 2
    assert np.abs(audio).max() > 0
    assert stats.blocks_rendered > voice.bad_frames


def test_render_is_deterministic_and_follows_the_patch(bundles, tmp_path):
    patch = parse_patch(PATCH, "p.toml")
    a, rate = render(bundles[0], patch, 2.0, seed=3)
    b, _ = render(bundles[0], patch, 2.0, seed=3)
    c, _ = render(bundles[0], patch, 2.0, seed=4)
    assert rate == 16000 and len(a) == 32000
    # At the bundle's own rate each call's block is kept, not a view of the engine's
    # output buffer (which held only the last block everywhere).
    blocks = a[64:-64 * 20].reshape(-1, 64)
    assert len(np.unique(blocks, axis=0)) > 0.9 * len(blocks)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    still, _ = render(bundles[0], parse_patch({}, "empty.toml"), 2.0, seed=3)
    assert not np.allclose(a, still)                      # the CVs and gates did something
    at48, rate48 = render(bundles[0], patch, 2.0, seed=3, sample_rate=48000)
    assert rate48 == 48000 and len(at48) == 96000
    assert np.all(np.isfinite(at48)) and np.abs(at48).max() <= 1.0


def test_render_starts_a_gate_frame_on_the_gate_s_own_sample(long_frames):
    """128 ms frames: a gate between two frame starts is heard from its own sample (the
    frame it falls in cut there), not from the next frame start."""
    times = [0.3, 0.71, 0.78]        # none on a frame start (multiples of 0.128 s)
    gated, rate = render(long_frames, parse_patch({"gate": {"1": {"times": times}}}, "g.toml"),
                         1.5, seed=3)
    # The same rises one by one: each changes the audio from its own sample on.
    for k, t in enumerate(times):
        partial, _ = render(long_frames, parse_patch({"gate": {"1": {"times": times[:k]}}},
                                                     "g.toml"), 1.5, seed=3)
        first = int(np.flatnonzero(np.abs(gated - partial) > 1e-7)[0])
        assert first == int(round(t * rate)), (t, first / rate)


def test_render_command_writes_a_wav(bundles, tmp_path, capsys):
    patch_file = tmp_path / "p.toml"
    patch_file.write_text('[cv.2]\nvolts = 3.0\n[gate.1]\nclock = 2.0\n')
    out = tmp_path / "out.wav"
    assert cli_main(["render", bundles[0], "--patch", str(patch_file), "--seconds", "1.5",
                     "--out", str(out)]) == 0
    audio, rate = soundfile.read(str(out))
    assert rate == 16000 and len(audio) == 24000 and np.abs(audio).max() > 0
    assert "real time" in capsys.readouterr().out
    # Without --seconds the patch says how long it lasts.
    patch_file.write_text('seconds = 0.5\n[cv.2]\nvolts = 3.0\n')
    assert cli_main(["render", bundles[0], "--patch", str(patch_file), "--out", str(out)]) == 0
    assert len(soundfile.read(str(out))[0]) == 8000


@pytest.mark.parametrize("argv, words", [
    (["render", "{a}", "--patch", "{tmp}/none.toml", "--seconds", "1", "--out", "{tmp}/o.wav"],
     "no such patch"),
    (["render", "{a}", "--patch", "{tmp}/bad.toml", "--seconds", "1", "--out", "{tmp}/o.wav"],
     "cv.9"),
    (["render", "{a}", "--patch", "{tmp}/ok.toml", "--seconds", "0", "--out", "{tmp}/o.wav"],
     "--seconds"),
    (["render", "{a}", "--patch", "{tmp}/ok.toml", "--out", "{tmp}/o.wav"], "how long"),
    (["render", "{tmp}", "--patch", "{tmp}/ok.toml", "--seconds", "1", "--out", "{tmp}/o.wav"],
     "model.json"),
    (["render", "{a}", "--patch", "{tmp}/ok.toml", "--seconds", "1", "--out",
      "{tmp}/no/o.wav"], "does not exist"),
])
def test_bad_render_requests_are_one_line(bundles, tmp_path, capsys, argv, words):
    (tmp_path / "bad.toml").write_text("[cv.9]\nvolts = 1.0\n")
    (tmp_path / "ok.toml").write_text("[cv.1]\nvolts = 1.0\n")
    status = cli_main([x.format(a=bundles[0], tmp=tmp_path) for x in argv])
    err = capsys.readouterr().err
    assert status != 0 and words in err and len(err.strip().splitlines()) == 1, err


def test_old_bundles_without_pca_spread_still_explore(bundles, tmp_path):
    """A bundle whose model.json has explained-variance ratios but no per-coordinate
    spread (exported before it was recorded) still plays, with a spread from the ratios."""
    import shutil

    folder = tmp_path / "old"
    shutil.copytree(bundles[0], folder)
    meta = json.loads((folder / "model.json").read_text())
    meta["pca"] = {"explained_variance_ratio": [0.7, 0.2, 0.05, 0.05]}
    (folder / "model.json").write_text(json.dumps(meta))
    model = _model(str(folder))
    assert model.explorer.stds[0] > model.explorer.stds[3] > 0


def test_inference_slower_than_real_time_is_counted_and_never_blocks_the_reader(bundles):
    """A frame that takes longer than it lasts: the voice counts it; the audio side
    reads silence for the gap (an underflow, counted) and never waits."""
    ring = AudioRing(8192)
    stats = Stats()
    voice = Voice(ring, 48000, stats, lookahead=256)
    model = _model(bundles[0])           # 4 ms frames
    real_render = model.render

    def slow(inputs):
        time.sleep(0.012)                 # three times longer than the frame lasts
        return real_render(inputs)

    model.render = slow
    voice.set_model(model)
    voice.start()
    block = np.zeros(256, np.float32)
    waits = []
    try:
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            ring.read_into(block)         # what the callback does, every 5.3 ms
            waits.append(time.perf_counter() - t0)
            time.sleep(256 / 48000)
    finally:
        voice.stop()
    assert voice.late_frames >= 5 and voice.late_frames == voice.frames
    assert stats.inference.percentile(50) > 4.0       # ms per 4 ms frame
    assert ring.underflows > 0
    assert max(waits) < 0.008                # never waited out a 12 ms render


def _play(bundle, gate_at=None, total=40000, rerender=True, speculate=True):
    """Run a voice against a reader pacing itself like a 48 kHz callback; post a gate-1
    rise when the reader reaches `gate_at`. Returns the samples read and the voice."""
    ring = AudioRing(32768)
    voice = Voice(ring, 48000, Stats(), lookahead=256, level=1.0)
    voice.rerender = rerender
    voice.speculate = speculate
    voice.set_model(_model(bundle))
    voice.start()
    out = np.zeros(total, np.float32)
    block = np.zeros(256, np.float32)
    read = 0
    posted_at = None
    try:
        next_t = time.monotonic()
        while read < total:
            if gate_at is not None and posted_at is None and read >= gate_at:
                posted_at = read
                voice.post_gate(0, True, time.monotonic_ns())
            if ring.available() >= 256:
                ring.read_into(block)
                out[read:read + 256] = block[:min(256, total - read)]
                read += 256
            next_t += 256 / 48000
            time.sleep(max(0.0, next_t - time.monotonic()))
    finally:
        voice.stop()
    return out, posted_at, voice


@pytest.fixture(scope="module")
def long_frames(tmp_path_factory):
    """128 ms latent frames: a gate waiting for the next frame would be heard late."""
    return write_toy_bundle(str(tmp_path_factory.mktemp("long") / "long"), frame=2048,
                            name="long")


@pytest.mark.parametrize("speculate", [False, True])
def test_a_gate_rerenders_the_queued_frame_and_is_heard_within_a_few_blocks(long_frames,
                                                                           speculate):
    plain, _, _ = _play(long_frames)
    gated, posted, voice = _play(long_frames, gate_at=9000, speculate=speculate)
    assert voice.rerenders == 1 and voice.speculated == int(speculate)
    first_change = int(np.flatnonzero(np.abs(gated - plain) > 1e-6)[0])
    # Never rewritten under the reader; heard two device blocks plus a render later (loose:
    # a loaded machine), well before the next frame boundary (3288 samples on here).
    assert posted < first_change <= posted + 2800
    # The splice is a crossfade: no step larger than the signal's own.
    around = np.abs(np.diff(gated[first_change - 64:first_change + 1024]))
    assert around.max() <= 1.5 * np.abs(np.diff(plain)).max()


def test_a_gate_frame_plays_whole_from_the_splice_and_the_frames_follow_it(long_frames,
                                                                          monkeypatch):
    """The gate's frame begins with its attack: it is heard from its first sample at the
    splice (after a short crossfade), not from the offset where the frame it replaces
    had got to, and the next frame follows it seamlessly."""
    splices = []
    rerender = Voice._rerender_queued_frame

    def spy(voice):
        before = voice.rerenders
        rerender(voice)
        if voice.rerenders > before:
            splices.append(voice._queued[-1])
    monkeypatch.setattr(Voice, "_rerender_queued_frame", spy)
    gated, posted, voice = _play(long_frames, gate_at=9000, total=30000)
    spliced, = splices
    keep, before, frame = spliced.start, spliced.before, len(spliced.samples)
    assert posted < keep < posted + 2800 and frame > 6000   # mid-frame, 2048 x 3 samples
    model, n = voice.model, int(GATE_FADE_S * 48000)
    model.restore(before)
    gate = output_stage(model.render(ControlInputs([0.0] * 4, True)), voice.level)
    after = output_stage(model.render(ControlInputs([0.0] * 4)), voice.level)
    np.testing.assert_allclose(gated[keep + n:keep + frame], gate[n:frame], atol=1e-6)
    nxt = gated[keep + frame:keep + frame + len(after)]
    np.testing.assert_allclose(nxt, after[:len(nxt)], atol=1e-6)


def test_a_rerender_keeps_the_gate2_rise_the_replaced_frame_took(long_frames):
    """Gate 2 taken by the queued frame (a random macro target), then gate 1 re-renders
    that frame from the state before it: the gate-2 rise is taken again, not lost."""
    targets = []
    for with_gate2 in (True, False):
        voice = Voice(AudioRing(32768), 48000, Stats(), lookahead=256, level=1.0)
        model = VoiceModel(long_frames, 48000, "ort-cpu",
                           settings=ControlSettings(macro_mode="random"), seed=0)
        model.reset()
        voice.model = model
        if with_gate2:
            voice.post_gate(1, True, 1)
        start = voice.ring.total_written
        block = voice._render_block()          # as the voice thread renders a frame
        voice._queued.append(QueuedFrame(start, voice._write(block), voice._snap,
                                         voice._snap_rise2))
        voice.post_gate(0, True, 2)
        voice._rerender_queued_frame()
        assert voice.rerenders == 1
        targets.append(model.mapper._glide_to.copy())
    assert not np.array_equal(targets[0], targets[1])  # the random target was drawn


def test_without_rerendering_a_gate_waits_for_the_next_frame(long_frames):
    plain, _, _ = _play(long_frames, rerender=False)
    gated, posted, voice = _play(long_frames, gate_at=9000, rerender=False)
    assert voice.rerenders == 0
    first_change = int(np.flatnonzero(np.abs(gated - plain) > 1e-6)[0])
    assert first_change % 6144 < 200  # on a frame boundary (after soxr-free resampling)


@pytest.mark.parametrize("gate_at", [4700, 5000, 5400, 6144 + 300])
def test_gates_near_a_frame_boundary_splice_cleanly(long_frames, gate_at):
    """A gate while the end of the previous frame is still queued: the splice starts no
    earlier than the queued frame, and nothing under the reader changes."""
    plain, _, _ = _play(long_frames, total=20000)
    gated, posted, voice = _play(long_frames, gate_at=gate_at, total=20000)
    assert voice.bad_frames == 0
    changed = np.flatnonzero(np.abs(gated - plain) > 1e-6)
    assert len(changed) and changed[0] > posted


@pytest.fixture(scope="module")
def short_frames(tmp_path_factory):
    """256-sample frames at 48 kHz, as the low-latency bundles have."""
    return write_toy_bundle(str(tmp_path_factory.mktemp("short") / "short"), frame=256,
                            sample_rate=48000, name="short")


@pytest.mark.parametrize("gate_at", [9000, 9300, 15000])
def test_a_gate_is_heard_from_the_next_block_read_not_after_the_queue(short_frames, gate_at):
    """With 256-sample frames a frame or two is queued past the block being read (the
    render margin): a gate that waits for the next frame is heard after them. Spliced
    at the read point, it is heard from the block after the one being read when it
    came."""
    plain, _, _ = _play(short_frames, total=24000)
    gated, posted, voice = _play(short_frames, gate_at=gate_at, total=24000)
    assert voice.rerenders >= 1 and voice.bad_frames == 0
    assert voice.speculated >= 1            # the twin was ready: no render to wait for
    first_change = int(np.flatnonzero(np.abs(gated - plain) > 1e-6)[0])
    waited, _, _ = _play(short_frames, gate_at=gate_at, total=24000, rerender=False)
    assert int(np.flatnonzero(np.abs(waited - plain) > 1e-6)[0]) > first_change
    # The block read with the post was queued already; the next one may be missed when
    # the render ends after its read began (a loaded machine).
    assert posted + 256 <= first_change <= posted + 3 * 256, (posted, first_change)


def gate_on_a_queued_frame(model, speculate, frames=3, gate2=False, after=None):
    """A voice (its thread's steps called in turn) that has written `frames` frames of
    `model`, each given its gated twin when `speculate`; the first read, then a gate-1
    rise on the second (with a gate-2 rise at the same moment when `gate2`), and two
    more frames (`after(voice)` called before them). Returns all the samples, the
    voice, and how many `model.render` calls the gate itself waited for."""
    voice = Voice(AudioRing(1 << 17), 48000, Stats(), lookahead=256, level=1.0)
    model.reset()
    voice.model = model
    voice._speculating = lambda: speculate  # the decision is tested on its own
    if model.samples_per_call * 48000 // model.sample_rate <= voice._gate_fade_len:
        voice._gate_fade_len = 16             # tiny frames: shorter than the gate's fade
        voice._fade_old = np.zeros(16, np.float32)
    for _ in range(frames):
        start = voice.ring.total_written
        block = voice._render_block()
        voice._queued.append(QueuedFrame(start, voice._write(block), voice._snap,
                                         voice._snap_rise2))
        assert voice._speculate() == speculate
    first = np.zeros(len(voice._queued[0].samples), np.float32)
    voice.ring.read_into(first)
    # Renders timed on a quiet machine: which queued frame a render at the gate lands on
    # depends on how long renders took (a busy one moved it a frame on).
    voice._render_s.clear()
    voice._render_s.extend([1e-4] * 4)
    render, calls = model.render, []

    def counted(inputs):
        calls.append(inputs.gate1_rise)
        return render(inputs)
    model.render = counted
    voice.post_gate(0, True, 1)
    if gate2:
        voice.post_gate(1, True, 1)
    assert voice._rerender_queued_frame()
    del model.render
    waited = len(calls)
    if after is not None:
        after(voice)
    for _ in range(2):
        voice._write(voice._render_block())
    out = np.zeros(voice.ring.available(), np.float32)
    voice.ring.read_into(out)
    return np.concatenate([first, out]), voice, waited


def test_a_gated_twin_rendered_ahead_plays_as_the_gate_rendered_then(long_frames):
    """Speculation changes when the gate's frame is rendered, not what it is: the same
    samples as a render at the gate, and the frames after it go on from the same state;
    the gate itself waits for no render."""
    ahead, fast, waited = gate_on_a_queued_frame(_model(long_frames), True)
    then, slow, rendered = gate_on_a_queued_frame(_model(long_frames), False)
    assert (fast.speculated, slow.speculated) == (1, 0) and fast.rerenders == 1
    assert waited == 0 and rendered == 1
    assert len(ahead) == len(then) == 6144 * 4  # 0, gated 1 (2 taken back), 2 more
    np.testing.assert_allclose(ahead, then, atol=1e-6)
    model = _model(long_frames)
    model.reset()
    plain = output_stage(model.render(ControlInputs()), 1.0)
    np.testing.assert_allclose(ahead[:len(plain)], plain, atol=1e-6)  # read before it
    assert not np.allclose(ahead[len(plain):2 * len(plain)],
                           output_stage(model.render(ControlInputs()), 1.0))  # the gate


def test_a_gate_2_edge_with_the_gate_leaves_the_twin_to_it_and_goes_to_the_next_frame(
        long_frames):
    """Both gates at once (one clock on both): gate 1 still takes its twin and waits for
    no render; gate 2's rise is not lost but reaches the frame after it."""
    seen = {}

    def look(voice):
        seen["queued"] = list(voice._edges)
        seen["high"] = voice.gate2_high
        seen["rise2"] = voice._inputs().gate2_rise

    _, voice, waited = gate_on_a_queued_frame(_model(long_frames), True, gate2=True,
                                              after=look)
    assert waited == 0 and voice.speculated == 1
    assert seen["queued"] == [(1, True, 1)] and seen["high"] is False
    assert seen["rise2"] and voice.gate2_high
    _, slow, rendered = gate_on_a_queued_frame(_model(long_frames), False, gate2=True)
    assert rendered == 1 and slow.speculated == 0 and slow.gate2_high


def test_frames_get_twins_only_while_the_renders_leave_room(short_frames):
    """A twin costs a render per frame: with renders near a frame's time the voice
    renders none (a gate renders its frame when it comes), and the queue it keeps is
    shorter than with twins to make."""
    voice = Voice(AudioRing(32768), 48000, Stats(), lookahead=256, level=1.0)
    voice.model = _model(short_frames)
    voice.model.reset()
    frame_s = 256 / 48000
    voice._render_s.extend([0.05 * frame_s] * 8)
    start = voice.ring.total_written
    voice._queued.append(QueuedFrame(start, voice._write(voice._render_block()),
                                     voice._snap, voice._snap_rise2))
    voice._render_s.extend([0.05 * frame_s] * 64)
    assert voice._speculating()
    with_twins = voice.threshold()
    voice._render_s.extend([0.5 * frame_s] * 64)
    assert not voice._speculating() and not voice._speculate()
    assert voice._queued[0].gated is None
    slow = voice.threshold()
    voice.speculate = False
    voice._render_s.extend([0.05 * frame_s] * 64)
    assert not voice._speculating()
    assert voice.threshold() < with_twins and slow > with_twins
