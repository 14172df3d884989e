"""F-RAVE networks: shapes per configuration, causality, streaming == offline, PQMF, configs."""
import copy

import pytest
import torch
from neurorave.common.errors import UserError
from neurorave.models.config import builtin_names, load_config
from neurorave.models.nets.decoder import BandDCBlock, Decoder, HarmonicSource, LevelStage
from neurorave.models.nets.pqmf import PQMFAnalysis, PQMFSynthesis
from neurorave.models.nets.streaming import cache_specs, init_caches, stream
from neurorave.models.training.module import build_nets

STREAMED = ["tiny", "small", "lowlatency", "gm-notes",
            pytest.param("base", marks=pytest.mark.slow)]


# Tiny nets run faster on one thread, and the machine is shared.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    out = {}
    for name in builtin_names():
        cfg = load_config(name)
        built = build_nets(cfg)
        for net in built.values():
            net.eval()
        out[name] = (cfg, built)
    return out


def _random_inputs(cfg, frames, batch=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    m = cfg.model
    z = torch.randn(batch, m.latent_size, frames, generator=g)
    attrs = torch.rand(batch, len(m.attributes), frames, generator=g) * 2 - 1
    noise = torch.rand(batch, m.bands, frames * m.hop // m.bands, generator=g) * 2 - 1
    return z, attrs, noise


def test_every_builtin_config_loads_with_a_crave_twin():
    names = set(builtin_names())
    for base in ("tiny", "small", "base", "lowlatency"):
        assert base in names and f"{base}-crave" in names
        frave, crave = load_config(base), load_config(f"{base}-crave")
        assert (frave.variant, crave.variant) == ("frave", "crave")
        assert frave.fader.weight > 0 and crave.fader.weight == 0
        assert frave.model == crave.model
    assert load_config("lowlatency").model.hop <= 256
    assert load_config("lowlatency").model.sample_rate == 48000
    base = load_config("base").model
    assert (base.sample_rate, base.bands, base.ratios, base.capacity, base.latent_size) == \
        (16000, 8, [4, 4, 4, 2], 64, 128)


@pytest.mark.parametrize("name", builtin_names())
def test_shapes_per_config(nets, name):
    cfg, built = nets[name]
    m = cfg.model
    frames = 3
    audio = torch.randn(2, frames * m.hop) * 0.1
    with torch.no_grad():
        mean, scale = built["encoder"](audio)
        assert mean.shape == scale.shape == (2, m.latent_size, frames)
        assert bool((scale > 0).all())
        z, attrs, noise = _random_inputs(cfg, frames)
        y = built["decoder"](z, attrs, noise)
        assert y.shape == (2, 1, frames * m.hop)
        assert bool(torch.isfinite(y).all())
        logits = built["latent_discriminator"](mean)
        assert logits.shape == (2, 16, len(m.attributes), frames)
        if name.startswith("tiny"):  # the critics are not streamed; one config is enough
            feats = built["discriminator"](y)
            assert len(feats) == cfg.discriminator.scales + len(cfg.discriminator.periods)
            assert all(f[-1].shape[0] == 2 for f in feats)


@pytest.mark.parametrize("name", ["tiny", "small", "lowlatency", "gm-notes"])
def test_decoder_is_causal(nets, name):
    """Changing z or the attributes at frame t never changes output samples before t * hop."""
    cfg, built = nets[name]
    dec, hop = built["decoder"], cfg.model.hop
    z, attrs, noise = _random_inputs(cfg, 8, batch=1)
    with torch.no_grad():
        ref = dec(z, attrs, noise)
        for t in (0, 3, 7):
            z2, a2 = z.clone(), attrs.clone()
            z2[..., t] += 1.0
            a2[..., t] = -a2[..., t]
            out = dec(z2, a2, noise)
            assert torch.equal(out[..., :t * hop], ref[..., :t * hop])
            now = slice(t * hop, (t + 1) * hop)
            assert not torch.allclose(out[..., now], ref[..., now])


@pytest.mark.parametrize("name", ["tiny", "small", "lowlatency"])
def test_encoder_is_causal(nets, name):
    """Changing audio at sample s never changes latent frames that end before s."""
    cfg, built = nets[name]
    enc, hop = built["encoder"], cfg.model.hop
    audio = torch.randn(1, 8 * hop) * 0.1
    with torch.no_grad():
        ref, _ = enc(audio)
        for s in (5 * hop, 5 * hop + hop // 2, 8 * hop - 1):
            changed = audio.clone()
            changed[..., s] += 1.0
            out, _ = enc(changed)
            frame = s // hop
            assert torch.equal(out[..., :frame], ref[..., :frame])
            if s % hop < hop // 2:  # (the PQMF window's far tail is ~0 by design)
                assert not torch.allclose(out[..., frame], ref[..., frame])


@pytest.mark.parametrize("name", STREAMED)
def test_decoder_streams_frame_by_frame_like_offline(nets, name):
    """The exporter's foundation: one frame per call with explicit caches == whole sequence.

    In float64, so that the comparison is exact to rounding: in float32 the trunk's
    rounding (~1e-5 absolute) survives the band DC blocker while the signal shrinks, and
    the level stage then scales both up, so a float32 tolerance would have to guess at
    gains. A real streaming bug (a cache off by one sample) differs by 1e-2 or more.
    (The float32 graph's parity is tests/test_nets_onnx.py's.)"""
    cfg, built = nets[name]
    dec = copy.deepcopy(built["decoder"]).double()
    frames = 64
    z, attrs, noise = (t.double() for t in _random_inputs(cfg, frames, batch=1))
    per_frame = cfg.model.hop // cfg.model.bands
    with torch.no_grad():
        offline = dec(z, attrs, noise)
        caches = init_caches(dec, batch=1, dtype=torch.float64)
        assert [tuple(c.shape) for c in caches] == [s for _, s in cache_specs(dec, 1)]
        outs = []
        for f in range(frames):
            with stream(dec, caches) as ctx:
                outs.append(dec(z[..., f:f + 1], attrs[..., f:f + 1],
                                noise[..., f * per_frame:(f + 1) * per_frame]))
            caches = ctx.new_caches
        streamed = torch.cat(outs, dim=-1)
    assert streamed.shape == offline.shape
    peak = float(offline.abs().max())
    assert float((streamed - offline).abs().max()) <= 1e-9 * max(1.0, peak)
    assert peak > 1e-3  # a real signal, not zeros on both sides


@pytest.mark.parametrize("name", STREAMED)
def test_encoder_then_decoder_stream_like_offline(nets, name):
    """Float64 for the same reason as the test above."""
    cfg, built = nets[name]
    enc, dec = (copy.deepcopy(built[k]).double() for k in ("encoder", "decoder"))
    hop = cfg.model.hop
    frames = 64
    audio = torch.randn(1, frames * hop, generator=torch.Generator().manual_seed(3),
                        dtype=torch.float64) * 0.3
    _, attrs, noise = (t.double() for t in _random_inputs(cfg, frames, batch=1))
    per_frame = hop // cfg.model.bands
    with torch.no_grad():
        mean, _ = enc(audio)
        offline = dec(mean, attrs, noise)
        enc_caches = init_caches(enc, dtype=torch.float64)
        dec_caches = init_caches(dec, dtype=torch.float64)
        means, outs = [], []
        for f in range(frames):
            with stream(enc, enc_caches) as ctx:
                m, _ = enc(audio[..., f * hop:(f + 1) * hop])
            enc_caches = ctx.new_caches
            with stream(dec, dec_caches) as ctx:
                outs.append(dec(m, attrs[..., f:f + 1],
                                noise[..., f * per_frame:(f + 1) * per_frame]))
            dec_caches = ctx.new_caches
            means.append(m)
    assert float((torch.cat(means, -1) - mean).abs().max()) <= 1e-9
    scale = max(1.0, float(offline.abs().max()))
    assert float((torch.cat(outs, -1) - offline).abs().max()) <= 1e-9 * scale


def test_streaming_state_resets_to_the_first_output(nets):
    cfg, built = nets["tiny"]
    dec = built["decoder"]
    z, attrs, noise = _random_inputs(cfg, 2, batch=1)
    per_frame = cfg.model.hop // cfg.model.bands
    with torch.no_grad():
        first = []
        for _ in range(2):
            caches = init_caches(dec)
            with stream(dec, caches) as ctx:
                first.append(dec(z[..., :1], attrs[..., :1], noise[..., :per_frame]))
            caches = ctx.new_caches
            with stream(dec, caches):  # advance the state once more, then reset
                dec(z[..., 1:], attrs[..., 1:], noise[..., per_frame:])
    assert torch.equal(first[0], first[1])


@pytest.mark.parametrize("bands", [4, 8, 16])
def test_pqmf_reconstructs_its_input_after_its_delay(bands):
    analysis, synthesis = PQMFAnalysis(bands), PQMFSynthesis(bands)
    x = torch.randn(1, 1, bands * 512, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        sub = analysis(x)
        y = synthesis(sub)
    assert sub.shape == (1, bands, 512)
    d = analysis.delay
    error = (y[..., d:] - x[..., :x.shape[-1] - d]).pow(2).mean() / x.pow(2).mean()
    assert float(error) < 1e-4  # better than -40 dB


def test_config_errors_name_the_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('extends = "tiny"\n[model]\ncapacty = 4\n')
    with pytest.raises(UserError, match=r"unknown key 'model.capacty'"):
        load_config(bad)
    bad.write_text('extends = "tiny"\n[training]\nchunk = 1000\n')
    with pytest.raises(UserError, match=r"'training.chunk' must be a multiple of the hop \(32"):
        load_config(bad)
    bad.write_text('extends = "tiny"\n[model]\nratios = "4,2"\n')
    with pytest.raises(UserError, match=r"'model.ratios' must be a list"):
        load_config(bad)
    bad.write_text('extends = "tiny"\n[model]\nattributes = ["rms", "loudness"]\n')
    with pytest.raises(UserError, match=r"'model.attributes'"):
        load_config(bad)
    bad.write_text('extends = "tiny"\n[model]\nband_dc_block = -5.0\n')
    with pytest.raises(UserError, match=r"'model.band_dc_block' must be 0 \(none\) or a cutoff"):
        load_config(bad)
    bad.write_text('extends = "tiny"\n[model]\nharmonics = 8\n')  # tiny has no f0
    with pytest.raises(UserError, match=r"'model.harmonics' must be 0, or > 0 with f0"):
        load_config(bad)
    bad.write_text('extends = "tiny"\n[model]\nlevel = true\nattributes = ["centroid"]\n')
    with pytest.raises(UserError, match=r"'model.level' needs rms"):
        load_config(bad)
    bad.write_text('extends = "tiny-crave"\n[fader]\nweight = 0.3\n')
    with pytest.raises(UserError, match=r"'fader.weight' must be 0 for a C-RAVE"):
        load_config(bad)
    bad.write_text("[model\n")
    with pytest.raises(UserError, match=r"not valid TOML"):
        load_config(bad)
    with pytest.raises(UserError, match=r"no configuration named 'huge'"):
        load_config("huge")


def test_config_round_trips_through_a_run_json(tmp_path):
    from neurorave.models.config import save_config

    cfg = load_config("small-crave")
    save_config(cfg, tmp_path / "config.json")
    assert load_config(tmp_path / "config.json") == cfg


def test_harmonic_source_plays_the_f0_it_is_given_across_streamed_frames():
    # One audible partial (the fundamental): its pitch is f0, whatever the frame split.
    rate, hop, bands, frames = 16000, 256, 8, 32
    source = HarmonicSource(4, 3, rate, hop, bands)
    with torch.no_grad():
        source.amplitudes.conv.weight.zero_()
        source.amplitudes.conv.bias.copy_(torch.tensor([10.0, -50.0, -50.0]))
    hidden = torch.zeros(1, 4, frames * hop // bands)
    for f0 in (110.0, 261.63, 1000.0):
        f0s = torch.full((1, frames), f0)
        with torch.no_grad():
            offline = source(hidden, f0s)[0, 0]
            caches = init_caches(source, 1)
            parts = []
            for f in range(frames):
                with stream(source, caches) as ctx:
                    parts.append(source(hidden[..., f * hop // bands:(f + 1) * hop // bands],
                                        f0s[:, f:f + 1]))
                caches = ctx.new_caches
        streamed = torch.cat(parts, dim=-1)[0, 0]
        assert float((streamed - offline).abs().max()) < 1e-3
        spectrum = torch.fft.rfft(offline * torch.hann_window(offline.numel()))
        peak = float(torch.argmax(spectrum.abs())) * rate / offline.numel()
        assert abs(peak - f0) < rate / offline.numel(), (peak, f0)
        assert float(offline.abs().max()) == pytest.approx(1.0, abs=0.01)
    # A partial at or above Nyquist is muted, not folded back.
    with torch.no_grad():
        source.amplitudes.conv.bias.copy_(torch.tensor([-50.0, -50.0, 10.0]))
        high = source(hidden, torch.full((1, frames), 3000.0))  # 3rd partial at 9 kHz
    assert float(high.abs().max()) < 1e-6


def test_harmonic_source_equals_the_sum_of_its_sines_sample_by_sample():
    # The source factors each sine into coarse and fine phases and sums the harmonics
    # as a matrix product: it must equal the plain per-sample sum, with amplitudes
    # that change every band sample and an f0 that changes every frame.
    rate, hop, bands, frames, harmonics = 48000, 256, 16, 6, 5
    source = HarmonicSource(3, harmonics, rate, hop, bands)
    g = torch.Generator().manual_seed(3)
    hidden = torch.randn(2, 3, frames * hop // bands, generator=g)
    f0 = torch.rand(2, frames, generator=g) * 9000 + 40  # some partials past Nyquist
    with torch.no_grad():
        out = source(hidden, f0)[:, 0].double()
        amps = torch.sigmoid(source.amplitudes(hidden) - 5.0).double()  # [B, H, band samples]
    f0 = f0.double()
    phase = torch.cumsum(f0.repeat_interleave(hop, dim=1) / rate, dim=1)  # cycles after n
    k = torch.arange(1, harmonics + 1, dtype=torch.float64)[None, :, None]
    audible = (k * f0.repeat_interleave(hop, dim=1)[:, None] < rate / 2).double()
    expected = (amps.repeat_interleave(bands, dim=2) * audible
                * torch.sin(2 * torch.pi * k * phase[:, None])).sum(1)
    assert 0.2 < float(audible.mean()) < 0.9  # the Nyquist mute is exercised
    assert float((out - expected).abs().max()) < 1e-4 * float(expected.abs().max())


def test_level_stage_plays_each_frame_at_the_rms_asked_and_streams_like_offline():
    hop, frames = 256, 12
    stage = LevelStage(hop)
    g = torch.Generator().manual_seed(0)
    audio = torch.randn(1, 1, frames * hop, generator=g) * 0.01  # -40 dBFS noise
    asked = torch.tensor([[0.05] * 4 + [0.2] * 4 + [0.0] * 4])
    with torch.no_grad():
        out = stage(audio, asked)
        caches = init_caches(stage, 1)
        parts = []
        for f in range(frames):
            with stream(stage, caches) as ctx:
                parts.append(stage(audio[..., f * hop:(f + 1) * hop], asked[:, f:f + 1]))
            caches = ctx.new_caches
    assert float((torch.cat(parts, -1) - out).abs().max()) < 1e-6
    rms = out.reshape(frames, hop).pow(2).mean(-1).sqrt()
    # A held level is reached one frame after it is asked for (a rising gain glides).
    assert float(rms[1:4].mean()) == pytest.approx(0.05, rel=0.15)
    assert float(rms[5:8].mean()) == pytest.approx(0.2, rel=0.15)
    assert float(rms[8:].max()) < 1e-6                  # rms 0: silence at once
    assert float(out[0, 0, :hop // 8].abs().max()) < float(out.abs().max()) / 4  # fades in
    # The rising gain glides: no step at the frame boundary.
    edge = 4 * hop
    ratio = out[0, 0, edge - 4:edge + 4] / audio[0, 0, edge - 4:edge + 4]
    assert float(ratio.max() - ratio.min()) < 0.1 * float(ratio.mean())
    # A loud frame after a quiet one does not overshoot (a falling gain applies at once).
    onset = torch.cat([torch.full((1, 1, hop), 1e-3), torch.full((1, 1, hop), 0.5)], -1)
    with torch.no_grad():
        hit = LevelStage(hop)(onset, torch.tensor([[0.1, 0.1]]))
    assert float(hit[..., hop:].abs().max()) <= 0.1 * 1.0001
    # A near-silent frame asked to be loud is limited to MAX_GAIN, not blown up to 0.2.
    quiet = torch.full((1, 1, frames * hop), 1e-6)
    with torch.no_grad():
        loud = stage(quiet, torch.full((1, frames), 0.2))
    assert float(loud.abs().max()) <= 1e-6 * LevelStage.MAX_GAIN * 1.0001


def test_band_dc_block_removes_offsets_keeps_tones_and_streams_like_offline():
    band_rate, bands, n = 2000.0, 2, 128 * 12
    stage = BandDCBlock(bands, band_rate, 20.0)
    t = torch.arange(n) / band_rate
    tone = 0.5 * torch.sin(2 * torch.pi * 300.0 * t)
    x = torch.stack([tone + 0.3, tone - 0.2 + 0.05 * t])[None]  # offsets, one drifting
    with torch.no_grad():
        out = stage(x)
        caches = init_caches(stage, 1)
        parts = []
        for size in (128, 128, 256, 64, 64, 200, 184, 512):  # calls of any length
            start = sum(p.shape[-1] for p in parts)
            with stream(stage, caches) as ctx:
                parts.append(stage(x[..., start:start + size]))
            caches = ctx.new_caches
    assert float((torch.cat(parts, -1) - out).abs().max()) < 1e-5
    tail = out[..., n // 2:]
    assert float(tail.mean(-1).abs().max()) < 0.01           # the offsets are gone
    kept = tail.pow(2).mean(-1).sqrt() / (0.5 / 2 ** 0.5)
    assert torch.allclose(kept, torch.ones_like(kept), atol=0.01)  # the tone is not
    # From a reset x[-1] = 0: the first sample is a step from 0.
    assert float(out[0, 0, 0]) == pytest.approx(0.3 * (1 + stage.r) / 2, abs=1e-6)


def test_decoder_with_band_dc_block_has_the_same_weights():
    # A checkpoint trained without the stage loads into a decoder with it.
    plain = Decoder(2, [2, 2], 4, 3, 2)
    blocked = Decoder(2, [2, 2], 4, 3, 2, band_dc_block_hz=20.0)
    assert blocked.dc_block is not None and plain.dc_block is None
    assert list(plain.state_dict()) == list(blocked.state_dict())
    blocked.load_state_dict(plain.state_dict())


@pytest.mark.parametrize("mode", ["subpixel", "repeat"])
def test_a_held_input_comes_out_held_only_from_the_repeat_upsampler(mode):
    """A sub-pixel trunk turns a held latent into a pattern that repeats every latent
    frame (a buzz at the frame rate: a comb every 187.5 Hz at 48 kHz and 256 samples);
    repeat-then-convolve turns it into a held band-rate signal, whatever its weights."""
    torch.manual_seed(0)
    dec = Decoder(16, [4, 2, 2], 4, 3, 2, upsample=mode).eval()
    held = torch.cat([torch.full((1, 3, 40), 0.4), torch.full((1, 2, 40), -0.3)], dim=1)
    with torch.no_grad():
        hidden = dec.trunk(held)[0]
    per_frame = dec.hop // dec.bands
    settled = hidden[:, 10 * per_frame:].reshape(hidden.shape[0], -1, per_frame)
    within_a_frame = float(settled.std(dim=2).max())
    scale = float(hidden.abs().max())
    if mode == "repeat":
        assert within_a_frame < 1e-5 * scale  # float32 rounding
    else:
        assert within_a_frame > 1e-2 * scale


def test_repeat_upsampler_has_fewer_weights_and_the_48k_configs_choose_it(tmp_path):
    """(It streams like offline: lowlatency is among STREAMED above.)"""
    sub = Decoder(16, [4, 2, 2], 8, 4, 2)
    rep = Decoder(16, [4, 2, 2], 8, 4, 2, upsample="repeat")
    count = lambda d: sum(p.numel() for p in d.trunk.parameters())  # noqa: E731
    assert count(rep) < count(sub)
    assert load_config("lowlatency").model.upsample == "repeat"
    assert load_config("gm-drums").model.upsample == "subpixel"  # the 16 kHz bundles'
    with pytest.raises(ValueError, match="upsampler"):
        Decoder(16, [4, 2, 2], 8, 4, 2, upsample="linear")
    bad = tmp_path / "bad.toml"
    bad.write_text('extends = "tiny"\n[model]\nupsample = "linear"\n')
    with pytest.raises(UserError, match=r"'model.upsample' must be one of subpixel, repeat"):
        load_config(bad)


def test_waveform_offset_reads_a_stuck_waveform_head_and_the_decoder_hands_out_its_heads():
    from neurorave.models.losses import waveform_offset

    t = torch.arange(3000, dtype=torch.float32)
    tone = torch.sin(2 * torch.pi * 0.01 * t)
    stuck = -0.99 + 0.01 * tone          # a saturated head: a constant, a ripple on it
    assert float(waveform_offset(tone.reshape(1, 1, -1))) < 1e-3
    assert float(waveform_offset(stuck.reshape(1, 1, -1))) > 0.97
    both = torch.stack([tone, stuck])[None]  # one head of two stuck: half
    assert abs(float(waveform_offset(both)) - 0.49) < 0.01
    torch.manual_seed(0)
    dec = Decoder(2, [2, 2], 4, 3, 2, band_dc_block_hz=20.0).eval()
    z, attrs = torch.randn(1, 3, 8), torch.rand(1, 2, 8) * 2 - 1
    noise = torch.rand(1, 2, 32) * 2 - 1
    with torch.no_grad():
        audio, heads = dec(z, attrs, noise, with_heads=True)
        assert torch.equal(audio, dec(z, attrs, noise))
        expected = torch.tanh(dec.waveform(dec.trunk(torch.cat([z, attrs], 1))))
    assert torch.allclose(heads, expected)
