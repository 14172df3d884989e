"""The joint prior: training (`neurorave train --config prior-tiny --source RUN`), export
into the bundle (streaming equals offline), the device-side generator, and the voice
generating phrases on gate 1."""
import json

import numpy as np
import onnx
import pytest
import torch
from neurorave.firmware.cli import main as cli_main
from neurorave.firmware.controls import ControlSettings
from neurorave.firmware.voice import ControlInputs, VoiceModel
from neurorave.models.datastore import write_dataset
from neurorave.models.descriptors import compute
from neurorave.models.export.command import export_run
from neurorave.models.prior.export import load_prior
from neurorave.models.prior.net import sample_from
from neurorave.models.prior.train import train_prior
from neurorave.models.runtime.bundle import BundleError, load_bundle
from neurorave.models.runtime.engines import open_engine
from neurorave.models.runtime.generator import PriorGenerator
from neurorave.models.training.cli import train
from test_fw_voice import gate_on_a_queued_frame

SR = 16000


def _phrases(n, length, seed):
    """Notes that swell and fade with a gliding pitch: structure in time to learn."""
    rng = np.random.default_rng(seed)
    t = np.arange(length) / SR
    rows = []
    for _ in range(n):
        f = rng.uniform(150, 900) * 2 ** (rng.uniform(-0.5, 0.5) * t / t[-1])
        env = np.sin(np.pi * np.clip(t / t[-1] * rng.uniform(1, 2), 0, 1)) ** 2
        rows.append(0.6 * env * np.sin(2 * np.pi * np.cumsum(f) / SR)
                    + 0.01 * rng.standard_normal(length))
    return np.array(rows, dtype=np.float32)


# Tiny nets run faster on one thread, and the machine is shared.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("prior")
    data = write_dataset(root / "data", _phrases(48, 4096, 0), SR, [f"p{i}" for i in range(48)])
    torch.set_num_threads(1)
    train("tiny", str(data), str(root / "run"), steps=12, progress=False)
    train_prior("prior-tiny", str(data), str(root / "prior"), str(root / "run"), progress=False)
    export_run(str(root / "run"), str(root / "bundle"), prior=str(root / "prior"))
    return root


def test_held_out_nll_beats_a_baseline_that_ignores_context(made):
    meta = json.loads((made / "prior" / "prior.json").read_text())
    metrics = meta["metrics"]
    assert metrics["step"] == 300
    assert metrics["valid_nll"] < metrics["baseline_nll"] - 0.3, metrics
    assert meta["frames"]["held_out"] > 0


def test_the_bundle_carries_the_prior(made):
    bundle = load_bundle(str(made / "bundle"))
    assert bundle.has_prior
    meta = bundle.meta["prior"]
    assert meta["dims"] == meta["latent_dims"] + len(bundle.attributes)
    assert {n.input for n in bundle.graphs["prior"].noise} == {"u_mix", "u1", "u2"}


@pytest.mark.parametrize("temperature", [0.8, 0.0, 1.5])
def test_streaming_prior_equals_the_torch_prior_over_the_sequence(made, temperature):
    meta, net = load_prior(str(made / "prior"))
    d, frames = meta["dims"], 80
    rng = np.random.default_rng(1)
    mean = np.asarray(meta["standardiser"]["mean"])
    std = np.asarray(meta["standardiser"]["std"])
    prev = (mean + std * rng.standard_normal((frames, d))).astype(np.float32)
    prev[0] = mean
    pinned = (mean + std * rng.standard_normal((frames, d))).astype(np.float32)
    mask = np.zeros((frames, d), np.float32)
    mask[:, 0] = 1
    mask[::3, -1] = 1
    u_mix, u1, u2 = (rng.random((frames, 1)), rng.random((frames, d)), rng.random((frames, d)))
    # Torch, the whole sequence at once (teacher forcing on prev).
    standard = lambda a: torch.tensor((a - mean) / std, dtype=torch.float32)[None]  # noqa: E731
    with torch.no_grad():
        logits, mu, log_sigma, _ = net(standard(prev), standard(pinned),
                                       torch.from_numpy(mask)[None])
        x = sample_from(logits[0], mu[0], log_sigma[0], torch.tensor([[temperature]]),
                        torch.tensor(u_mix, dtype=torch.float32),
                        torch.tensor(u1, dtype=torch.float32),
                        torch.tensor(u2, dtype=torch.float32)).numpy()
    offline = mask * pinned + (1 - mask) * (x * std + mean)
    # ONNX Runtime, one frame per call with its state, the same noise given by hand.
    engine = open_engine(load_bundle(str(made / "bundle")), "ort-cpu", roles=["prior"])
    graph = engine.graphs["prior"]
    graph.reset()
    streamed = np.zeros_like(offline)
    for t in range(frames):
        for name, value in (("prev", prev[t]), ("pinned", pinned[t]), ("mask", mask[t]),
                            ("u_mix", u_mix[t]), ("u1", u1[t]), ("u2", u2[t])):
            graph.inputs[name][0] = value
        graph.inputs["temperature"][0, 0] = temperature
        graph.run()
        streamed[t] = graph.outputs["x"][0]
    # In each dimension's own spread (raw attributes run to thousands of Hz, where
    # float32 alone is ~1e-4 Hz).
    assert np.max(np.abs(streamed - offline) / std) <= 1e-4
    assert np.array_equal(streamed[:, 0], pinned[:, 0])  # pinned dims exactly as given


def test_the_prior_graph_stays_small(made):
    """ONNX Runtime spends about a microsecond a node whatever its size, and the prior runs
    every latent frame: its export folds and fuses what the training net spells out (65
    nodes before, 43 after)."""
    model = onnx.load(str(made / "bundle" / "prior.onnx"))
    assert sum(n.op_type != "Constant" for n in model.graph.node) <= 45


def test_the_engine_draws_the_priors_noise_as_the_generator_gives_it(made):
    """[0, 1) noise skips the scale and offset passes; the values are the generator's own,
    input after input, as before (a seed replays the phrases it always did)."""
    engine = open_engine(load_bundle(str(made / "bundle")), "ort-cpu", roles=["prior"])
    graph = engine.graphs["prior"]
    graph.reset(7)
    graph.fill_noise()
    rng = np.random.default_rng(7)
    for spec in graph.spec.noise:
        assert (spec.low, spec.high) == (0.0, 1.0)
        want = rng.random(graph.inputs[spec.input].shape, dtype=np.float32)
        assert np.array_equal(graph.inputs[spec.input], want), spec.input


def _generator(made):
    bundle = load_bundle(str(made / "bundle"))
    return PriorGenerator(bundle, open_engine(bundle, "ort-cpu", roles=["prior"]))


def _phrase(gen, seed, steps=40, pinned=None, mask=None, temperature=1.0):
    gen.reset(seed)
    pinned = np.zeros(gen.dims, np.float32) if pinned is None else pinned
    mask = np.zeros(gen.dims, np.float32) if mask is None else mask
    return np.array([gen.step(pinned, mask, temperature).copy() for _ in range(steps)])


def test_a_seed_replays_a_phrase_and_temperature_sets_the_spread(made):
    gen = _generator(made)
    a, b, c = _phrase(gen, 5), _phrase(gen, 5), _phrase(gen, 6)
    assert np.array_equal(a, b) and not np.allclose(a, c)
    cold1, cold2 = _phrase(gen, 5, temperature=0.0), _phrase(gen, 6, temperature=0.0)
    assert np.allclose(cold1, cold2, atol=1e-5)          # no noise at temperature 0
    spread = lambda t: np.std([_phrase(gen, s, 10, temperature=t)[-1]  # noqa: E731
                               for s in range(30)], axis=0).mean()
    assert spread(1.5) > spread(0.5) > spread(0.0) - 1e-6


def test_pins_hold_exactly_and_the_rest_follows_them(made):
    gen = _generator(made)
    latent = gen.latent_dims
    mask = np.zeros(gen.dims, np.float32)
    mask[0] = mask[latent] = 1                             # latent 0 and the first attribute
    lo, hi = np.zeros(gen.dims, np.float32), np.zeros(gen.dims, np.float32)
    lo[0], hi[0] = -2.0, 2.0
    lo[latent], hi[latent] = 0.0, 0.5
    low = np.array([_phrase(gen, s, 12, lo, mask) for s in range(20)])
    high = np.array([_phrase(gen, s, 12, hi, mask) for s in range(20)])
    assert np.all(low[..., 0] == -2.0) and np.all(high[..., latent] == 0.5)
    free = [i for i in range(gen.dims) if not mask[i]]
    # The free dimensions are sampled given the pins: other pins, other frames.
    assert np.abs(low[..., free].mean((0, 1)) - high[..., free].mean((0, 1))).max() > 0.01


def test_a_phrase_starts_with_sound_unless_rms_is_pinned_to_silence(made):
    """Gate 1 asks for a phrase: a first frame the prior draws silent is drawn again (hot
    draws of this prior's rms often fall below silence). A pinned rms is the musician's."""
    from neurorave.models.audibility import AUDIBLE_RMS

    gen = _generator(made)
    names = [a.name for a in load_bundle(str(made / "bundle")).attributes]
    rms = gen.latent_dims + names.index("rms")
    firsts = np.array([_phrase(gen, s, 1, temperature=2.0)[0, rms] for s in range(60)])
    assert firsts.min() >= AUDIBLE_RMS
    mask = np.zeros(gen.dims, np.float32)
    mask[rms] = 1
    pinned = np.zeros(gen.dims, np.float32)
    assert _phrase(gen, 3, 1, pinned, mask, temperature=2.0)[0, rms] == 0.0
    assert np.array_equal(_phrase(gen, 7, 20, temperature=2.0),
                          _phrase(gen, 7, 20, temperature=2.0))   # a seed still replays


def test_sixty_seconds_of_generation_stays_alive_and_in_range(made):
    """No collapse: a minute of frames keeps moving, stays within what training saw."""
    gen = _generator(made)
    bundle = load_bundle(str(made / "bundle"))
    frames = int(60 * bundle.sample_rate / bundle.frame_size)
    out = _phrase(gen, 1, frames)
    assert np.all(np.isfinite(out))
    meta = json.loads((made / "prior" / "prior.json").read_text())
    mean, std = np.asarray(meta["standardiser"]["mean"]), np.asarray(meta["standardiser"]["std"])
    z = (out - mean) / std
    assert np.abs(z.mean(0)).max() < 2.5 and np.all(z.std(0) < 4)   # within the training range
    second = int(bundle.sample_rate / bundle.frame_size)
    windows = out[: (len(out) // second) * second].reshape(-1, second, gen.dims)
    assert np.all(windows.std(1).max(-1) > 1e-3)          # never frozen for a second


def test_the_voice_generates_phrases_and_gate1_restarts_them(made, tmp_path):
    model = VoiceModel(str(made / "bundle"), SR, "ort-cpu", settings=ControlSettings(), seed=3)
    assert model.mode == "prior"

    def play(gate_at):
        model.reset()
        out = []
        for f in range(120):
            model.render(ControlInputs([0, 0, 0, 0], gate1_rise=(f == gate_at)))
            out.append(model.decoder.inputs["z"][0, :, 0].copy())
        return np.array(out)

    gated, again, ungated = play(50), play(50), play(999)
    assert np.array_equal(gated, again)                   # deterministic with the seed
    assert np.array_equal(gated[:50], ungated[:50])       # nothing changes before the gate
    assert not np.allclose(gated[50:60], ungated[50:60])  # the gate starts a new phrase
    # Ten seconds through the decoder: sound throughout, no NaN, no clipping.
    model.reset()
    long = np.concatenate([model.render(ControlInputs([1.0, 2.0, -1.0, 0.0],
                                                      gate1_rise=(f % 500 == 0)))
                           for f in range(5000)])
    bundle = load_bundle(str(made / "bundle"))
    names = [a.name for a in bundle.attributes]
    curves = compute(long, SR, 1600, names)
    assert np.all(np.isfinite(long)) and np.abs(long).max() < 1.0
    assert curves["rms"].min() > 1e-4 and curves["rms"].std() > 0
    # The generated sound's descriptors sit within what the training data spans.
    for a in bundle.attributes:
        margin = 0.25 * (a.max - a.min)
        mean = float(np.mean(curves[a.name]))
        assert a.min - margin <= mean <= a.max + margin, (a.name, mean, a.min, a.max)


@pytest.mark.parametrize("argv, words", [
    (["train", "--config", "prior-tiny", "--data", "{root}/data", "--out", "{root}/p2"],
     "--source"),
    (["train", "--config", "prior-tiny", "--data", "{root}/data", "--out", "{root}/p2",
      "--source", "{root}/data"], "not a training run"),
    (["train", "--config", "tiny", "--data", "{root}/data", "--out", "{root}/p2",
      "--source", "{root}/run"], "--config prior"),
    (["train", "--config", "prior-tiny", "--data", "{root}/data", "--out", "{root}/prior",
      "--source", "{root}/run"], "already holds a prior"),
    (["export", "{root}/run", "--out", "{root}/b2", "--prior", "{root}/data"],
     "not a trained prior"),
])
def test_bad_prior_requests_are_one_line(made, capsys, argv, words):
    status = cli_main([a.format(root=made) for a in argv])
    err = capsys.readouterr().err
    assert status != 0 and words in err and len(err.strip().splitlines()) == 1, err


def test_a_prior_from_another_latent_space_is_refused(made, tmp_path, capsys):
    train("tiny", str(made / "data"), str(tmp_path / "other"), steps=3, seed=7, progress=False)
    status = cli_main(["export", str(tmp_path / "other"), "--out", str(tmp_path / "b"),
                       "--prior", str(made / "prior")])
    assert status != 0 and "another latent space" in capsys.readouterr().err


def test_resume_continues_to_the_same_weights(made, tmp_path):
    args = ("prior-tiny", str(made / "data"))
    train_prior(*args, str(tmp_path / "straight"), str(made / "run"), steps=60, progress=False)
    train_prior(*args, str(tmp_path / "halves"), str(made / "run"), steps=30, progress=False)
    # prior-tiny checkpoints every 100 steps and at the end: the half run saved at 30.
    train_prior(*args, str(tmp_path / "halves"), None, steps=60, resume=True, progress=False)
    a = torch.load(tmp_path / "straight" / "weights" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "halves" / "weights" / "last.pt", weights_only=True)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_some_windows_start_where_a_phrase_starts():
    """Gate 1 resets the prior; windows that begin at an onset teach it how a phrase
    begins: with sound, not in the rest between two hits."""
    from neurorave.models.prior.train import phrase_starts, window_starts

    rng = np.random.default_rng(0)
    items, starts = window_starts(rng, 64, 10, 200, 32, 1.0)  # no onsets: the item's start
    assert not starts.any() and items.max() < 10
    _, never = window_starts(rng, 4000, 10, 200, 32, 0.0)
    assert never.max() == 168 and (never == 0).mean() < 0.02
    _, half = window_starts(rng, 4000, 10, 200, 32, 0.5)
    assert 0.45 < (half == 0).mean() < 0.56 and half.max() == 168

    # Two items: hits at frames 3 and 40 (each a rise out of near-silence, then a
    # decay), and one that starts loud and only decays.
    rms = np.full((2, 64), 1e-5)
    for hit in (3, 40):
        rms[0, hit:hit + 10] = 0.2 * 0.7 ** np.arange(10)
    rms[1] = 0.1 * 0.9 ** np.arange(64)
    onsets = phrase_starts(rms)
    assert onsets.tolist() == [[0, 3], [0, 40], [1, 0]]  # decays are not onsets
    items, starts = window_starts(rng, 4000, 2, 64, 32, 0.5, onsets)
    pairs = list(zip(items.tolist(), starts.tolist()))
    at_onset = [pair in {(0, 3), (0, 40), (1, 0)} for pair in pairs]
    assert set(pairs) >= {(0, 3), (0, 40), (1, 0)}
    assert 0.45 < np.mean(at_onset) < 0.6   # half, and a few uniform starts by chance
    assert starts.max() == 40  # an onset less than a window before the end still starts one


def test_padding_past_an_items_end_is_left_out_of_the_loss():
    from neurorave.models.prior.net import PriorNet
    from neurorave.models.prior.train import sequence_nll

    torch.manual_seed(0)
    net = PriorNet(5, hidden=16, layers=1, mixtures=2)
    x, mask = torch.randn(3, 12, 5), torch.zeros(3, 5)
    valid = torch.zeros(3, 12)
    valid[:, :7] = 1.0
    padded = x.clone()
    padded[:, 7:] = 0.0
    with torch.no_grad():
        kept = sequence_nll(net, padded, mask, valid)
        truncated = sequence_nll(net, x[:, :7], mask)
        everything = sequence_nll(net, padded, mask)
    assert float(kept) == pytest.approx(float(truncated), rel=1e-5)
    assert float(everything) != pytest.approx(float(truncated), rel=1e-3)


@pytest.mark.parametrize("line, words", [("phrase_start_probability = 1.5", "between 0 and 1"),
                                         ("pin_probability = -0.1", "between 0 and 1"),
                                         ("steps = 0", "positive"),
                                         ("steps = \"many\"", "must be a number")])
def test_bad_prior_config_values_are_one_line(tmp_path, line, words):
    from neurorave.common.errors import UserError
    from neurorave.models.prior.train import load_prior_config

    path = tmp_path / "bad.toml"
    path.write_text(f"[prior]\nhidden = 8\n[training]\n{line}\n")
    with pytest.raises(UserError, match=words):
        load_prior_config(str(path))
    path.write_text("[prior]\nhidden = 8\n[training]\nphrase_start_probability = 0\n")
    assert load_prior_config(str(path))["training"]["phrase_start_probability"] == 0


def test_a_gated_twin_of_a_prior_bundle_plays_as_the_gate_rendered_then(made):
    """The twin starts a phrase (with the phrase lead) from the state before its frame
    and puts the prior and decoder back after: the gate's frame and the ones after it
    are those a render at the gate makes."""
    def model():
        return VoiceModel(str(made / "bundle"), 48000, "ort-cpu",
                          settings=ControlSettings(), seed=3)
    assert model().phrase_lead >= 1
    ahead, fast, waited = gate_on_a_queued_frame(model(), True, frames=4)
    then, slow, rendered = gate_on_a_queued_frame(model(), False, frames=4)
    assert (fast.speculated, slow.speculated, waited, rendered) == (1, 0, 0, 1)
    assert fast.model.phrases == slow.model.phrases == 1
    np.testing.assert_allclose(ahead, then, atol=1e-6)


def _rms_index(gen, made):
    names = [a.name for a in load_bundle(str(made / "bundle")).attributes]
    return gen.latent_dims + names.index("rms")


def test_in_hit_mode_the_level_only_falls_after_the_attack(made):
    """Gate mode "hit": the prior's phrase may rise during its attack, then its rms never
    rises again (a louder draw is drawn again with rms pinned at the level so far), and
    the rest of the frame follows that pin; in phrase mode the same seeds rise again."""
    gen = _generator(made)
    rms = _rms_index(gen, made)
    rises = 0
    for seed in range(12):
        gen.hit_after = None
        gen.reset()                                            # nothing rings before
        free = _phrase(gen, seed, 60, temperature=1.5)
        rises += int((np.diff(free[3:, rms]) > 1e-6).sum())
        gen.hit_after = 3
        gen.reset()
        hit = _phrase(gen, seed, 60, temperature=1.5)
        np.testing.assert_array_equal(hit[:3], free[:3])       # the attack as it comes
        assert np.all(np.diff(hit[3:, rms]) <= 1e-7), seed     # then only down
        assert hit[3:, rms].max() <= hit[:3, rms].max() + 1e-7
    assert rises > 20                                          # the prior alone rises often
    # A level the musician pins (rms held by a CV) is theirs, hit mode or not.
    mask = np.zeros(gen.dims, np.float32)
    mask[rms] = 1
    pinned = np.zeros(gen.dims, np.float32)
    pinned[rms] = 0.05
    held = _phrase(gen, 1, 20, pinned, mask)
    assert np.all(held[:, rms] == np.float32(0.05))
    # The ceiling travels with the state: saved mid-phrase, the rest replays.
    gen.reset(4)
    zeros = np.zeros(gen.dims, np.float32)
    for _ in range(8):
        gen.step(zeros, zeros, 1.5)
    saved, graph = gen.save_state(), gen.graph.snapshot()
    first = np.array([gen.step(zeros, zeros, 1.5).copy() for _ in range(20)])
    gen.load_state(saved)
    gen.graph.restore(graph)
    again = np.array([gen.step(zeros, zeros, 1.5).copy() for _ in range(20)])
    np.testing.assert_array_equal(first, again)


def test_in_note_mode_a_note_holds_while_its_gate_is_high_and_falls_after(made):
    """Gate mode "note": with gate 1 high (or not followed) a note is a hit, the same
    frames; once the gate is low and the attack is over, its level falls at least by
    `release` a frame from the attack's peak."""
    gen = _generator(made)
    rms = _rms_index(gen, made)
    release = 0.7
    zeros = np.zeros(gen.dims, np.float32)
    for seed in range(6):
        gen.hit_after, gen.release, gen.gate_high = 3, None, None
        gen.reset()
        hit = _phrase(gen, seed, 30, temperature=1.5)
        gen.release = release
        for gate in (True, None):
            gen.gate_high = gate
            gen.reset()
            np.testing.assert_array_equal(_phrase(gen, seed, 30, temperature=1.5), hit)
        gen.reset()
        gen.reset(seed)
        levels = []
        for f in range(30):
            gen.gate_high = f < 1                               # a short trigger
            levels.append(float(gen.step(zeros, zeros, 1.5)[rms]))
        levels = np.array(levels)
        np.testing.assert_array_equal(levels[:3], hit[:3, rms])  # the attack as it comes
        bound = levels[:3].max() * release ** np.arange(1, 28)
        assert np.all(levels[3:] <= bound + 1e-7), seed          # released
        assert levels[-1] < hit[-1, rms] or hit[-1, rms] <= bound[-1], seed


def test_in_hit_mode_a_gate_is_heard_over_what_rings(made):
    """A hit's first frame is HIT_RISE times the level its gate fell on (drawn there, or
    pinned there when no draw gets there); a phrase starts as the prior draws it, often
    no louder than what was playing."""
    from neurorave.models.runtime.generator import HIT_RISE

    gen = _generator(made)
    rms = _rms_index(gen, made)
    top = float(gen._hi[rms - gen.latent_dims])
    mask = np.zeros(gen.dims, np.float32)
    mask[rms] = 1
    zeros = np.zeros(gen.dims, np.float32)
    quieter = 0
    for seed in range(12):
        ringing = np.float32(top / HIT_RISE * (0.3 + 0.06 * seed))  # some reachable, some not
        pinned = np.zeros(gen.dims, np.float32)
        pinned[rms] = ringing
        starts = []
        for mode in (None, 3):
            gen.hit_after = mode
            _phrase(gen, seed, 5, pinned, mask)               # a loud phrase rings
            gen.reset(100 + seed)                              # the gate
            starts.append(float(gen.step(zeros, zeros, 1.0)[rms]))
        phrase, hit = starts
        quieter += phrase < HIT_RISE * ringing
        assert hit >= min(HIT_RISE * ringing, top) * (1 - 1e-6), seed
    assert quieter >= 6                                        # the prior alone: often not
    # Nothing ringing (a reset with no frame played since): a hit starts as a phrase.
    gen.hit_after = 3
    fresh = _generator(made)
    fresh.hit_after = None
    for _ in range(2):  # the first reset reads what rang, the second finds nothing
        gen.reset(7)
        fresh.reset(7)
    assert gen.step(zeros, zeros)[rms] == fresh.step(zeros, zeros)[rms]


def test_the_gate_mode_is_the_players_else_the_bundles(made, tmp_path):
    import shutil

    hit = tmp_path / "hit"
    shutil.copytree(made / "bundle", hit)
    meta = json.loads((hit / "model.json").read_text())
    meta["prior"]["gate"] = "hit"
    (hit / "model.json").write_text(json.dumps(meta))
    model = VoiceModel(str(hit), SR, "ort-cpu", settings=ControlSettings(), seed=3)
    attack = int(np.ceil(0.03 * model.frame_rate_hz))
    assert model.gate_mode == "hit"
    assert model.generator.hit_after == model.phrase_lead + attack
    model.configure(ControlSettings(gate_mode="phrase"), model.mapper.calibration)
    assert model.gate_mode == "phrase" and model.generator.hit_after is None
    plain = VoiceModel(str(made / "bundle"), SR, "ort-cpu", settings=ControlSettings())
    assert plain.gate_mode == "phrase" and plain.generator.hit_after is None
    plain.configure(ControlSettings(gate_mode="hit"), plain.mapper.calibration)
    assert plain.generator.hit_after == plain.phrase_lead + attack
    assert plain.generator.release is None
    plain.configure(ControlSettings(gate_mode="note"), plain.mapper.calibration)
    assert plain.generator.hit_after == plain.phrase_lead + attack
    assert 0.0 < plain.generator.release < 1.0
    meta["prior"]["gate"] = "drums"
    (hit / "model.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="'prior.gate' must be one of phrase, hit, note"):
        load_bundle(str(hit))


def test_in_note_mode_the_voice_releases_a_note_when_gate_1_falls(made):
    """The voice hands gate 1's level to the prior each frame: a note whose gate fell
    after one frame ends quieter than the same note held (hit mode ignores the fall)."""
    def levels(mode, held):
        model = VoiceModel(str(made / "bundle"), SR, "ort-cpu",
                           settings=ControlSettings(gate_mode=mode), seed=3)
        gen = model.generator
        rms = gen.latent_dims + [a.name for a in model.bundle.attributes].index("rms")
        out = []
        for f in range(5 + gen.hit_after + 60):
            model.render(ControlInputs([0.0] * 4, gate1_rise=(f == 5),
                                       gate1_high=(f == 5) or (held and f > 5)))
            out.append(float(gen._prev[0, rms]))
        return np.array(out), gen.hit_after, gen.release

    released, attack, release = levels("note", False)
    held, hit = levels("note", True)[0], levels("hit", False)[0]
    np.testing.assert_array_equal(held, hit)                         # held: a hit
    np.testing.assert_array_equal(released[:5 + attack], hit[:5 + attack])  # the attack
    assert released[-1] <= released[:5 + attack].max() * release ** 59 + 1e-7  # let go
    assert released[-1] < 0.2 * hit[-1]


def test_export_names_the_gate_mode_of_the_bundle(made, tmp_path, capsys):
    out = tmp_path / "drums"
    assert cli_main(["export", str(made / "run"), "--out", str(out), "--prior",
                     str(made / "prior"), "--gate", "hit"]) == 0
    assert load_bundle(str(out)).meta["prior"]["gate"] == "hit"
    assert VoiceModel(str(out), SR, "ort-cpu").gate_mode == "hit"
    capsys.readouterr()
    assert cli_main(["export", str(made / "run"), "--out", str(tmp_path / "x"),
                     "--gate", "hit"]) != 0
    err = capsys.readouterr().err.strip()
    assert err == "neurorave export: --gate says what gate 1 starts in the prior: give " \
                  "--prior too", err


def test_export_names_the_phrase_lead_of_the_bundle(made, tmp_path, capsys):
    out = tmp_path / "lead0"
    assert cli_main(["export", str(made / "run"), "--out", str(out), "--prior",
                     str(made / "prior"), "--lead", "0"]) == 0
    assert load_bundle(str(out)).meta["prior"]["lead"] == 0
    assert VoiceModel(str(out), SR, "ort-cpu").phrase_lead == 0
    capsys.readouterr()
    assert cli_main(["export", str(made / "run"), "--out", str(tmp_path / "x"), "--prior",
                     str(made / "prior"), "--lead", "9"]) != 0
    assert capsys.readouterr().err.strip() == "neurorave export: --lead must be 0 to 4, got 9"
