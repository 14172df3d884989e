"""Descriptor core: librosa agreement, analytic signals, edge cases, torch agreement."""
import librosa
import numpy as np
import pytest
import scipy.signal
import torch
from neurorave.models import descriptors as D
from neurorave.models import descriptors_torch as DT

SR = 16000


def tone(freq, seconds=1.0, sr=SR, amp=0.5, harmonics=1):
    t = np.arange(int(seconds * sr)) / sr
    return sum(amp / k * np.sin(2 * np.pi * freq * k * t) for k in range(1, harmonics + 1))


def noise(seconds=1.0, sr=SR, seed=0, amp=0.1):
    return amp * np.random.default_rng(seed).standard_normal(int(seconds * sr))


def lowpassed(cutoff, sr=SR, seconds=1.0, seed=0):
    sos = scipy.signal.butter(8, cutoff, fs=sr, output="sos")
    return 0.3 * scipy.signal.sosfilt(sos, noise(seconds, sr, seed, amp=1.0))


@pytest.mark.parametrize("sr,hop", [(16000, 256), (16000, 32), (48000, 64), (48000, 2048),
                                    (22050, 100)])
def test_frame_i_describes_samples_i_hop_to_i_plus_1_hop(sr, hop):
    n_frames = 3 * D.frame_length(sr, hop) // hop + 20
    for k in (n_frames // 2, n_frames // 2 + 7):
        x = np.zeros(n_frames * hop)
        x[k * hop:(k + 1) * hop] = 0.5  # a pulse filling exactly the span of frame k
        rms = D.compute(x, sr, hop, names=("rms",))["rms"].astype(np.float64)
        assert int(np.argmax(rms)) <= k <= len(rms) - 1 - int(np.argmax(rms[::-1]))
        # Every window that sees the burst is centred on a frame's span, so the response
        # is symmetric about frame k: its centre of mass is frame k.
        centre = np.sum(np.arange(len(rms)) * rms ** 2) / np.sum(rms ** 2)
        assert centre == pytest.approx(k, abs=0.02)


def test_rms_reads_a_short_window_so_an_attack_is_not_heard_ahead():
    # The bundled 16 kHz models (1024-sample frames): one window for every descriptor,
    # as they were trained.
    assert D.rms_length(16000, 1024) == D.frame_length(16000, 1024) == 2048
    # The 48 kHz voice (256-sample frames): rms over 1024 samples, the spectra over 4096.
    sr, hop = 48000, 256
    assert (D.rms_length(sr, hop), D.frame_length(sr, hop)) == (1024, 4096)
    k = 40
    x = np.zeros(80 * hop)
    x[k * hop:] = 0.5 * np.sin(2 * np.pi * 440 * np.arange(len(x) - k * hop) / sr)
    rms = D.compute(x, sr, hop, names=("rms",))["rms"]
    first = int(np.flatnonzero(rms > 1e-6)[0])
    ahead_ms = 1e3 * (k - first) * hop / sr
    # Frame k - 2 still reads 128 samples of the attack: 10.7 ms of frames, 8 ms of audio.
    assert first == k - 2 and ahead_ms <= 10.7
    spectral_ahead = (D.frame_length(sr, hop) - hop) / 2 / sr * 1e3
    assert spectral_ahead == pytest.approx(40.0)  # what rms read ahead before


@pytest.mark.parametrize("sr,hop", [(16000, 256), (16000, 64), (48000, 512), (22050, 2048),
                                    (44100, 100)])
def test_frames_land_on_the_latent_grid(sr, hop):
    x = noise(1.3, sr)
    curves = D.compute(x, sr, hop)
    assert set(curves) == set(D.ATTRIBUTES) | {"voicing"}
    for v in curves.values():
        assert v.dtype == np.float32 and v.shape == (len(x) // hop,)
        assert np.isfinite(v).all()


@pytest.mark.parametrize("sr,hop", [(16000, 256), (48000, 64), (16000, 2048)])
def test_rms_centroid_bandwidth_match_librosa_on_the_same_frames(sr, hop):
    x = noise(2.0, sr) + tone(330, 2.0, sr, harmonics=4)
    curves = D.compute(x, sr, hop)
    padded, n_fft, n = D.analysis_frames(x, sr, hop)
    rms_padded, n_rms, _ = D.analysis_frames(x, sr, hop, D.rms_length(sr, hop))
    kw = dict(n_fft=n_fft, hop_length=hop, center=False)
    ref = {
        "rms": librosa.feature.rms(y=rms_padded, frame_length=n_rms, hop_length=hop,
                                   center=False),
        "centroid": librosa.feature.spectral_centroid(y=padded, sr=sr, **kw),
        "bandwidth": librosa.feature.spectral_bandwidth(y=padded, sr=sr, **kw),
    }
    for name, r in ref.items():
        r = r[0, :n]
        assert r.shape == curves[name].shape
        np.testing.assert_allclose(curves[name], r, rtol=0.01, err_msg=name)


def test_sine_centroid_is_its_frequency_and_rms_its_amplitude():
    for freq in (200.0, 1000.0, 3000.0):
        c = D.compute(tone(freq, amp=0.8), SR, 256)
        inner = slice(8, -8)  # away from the zero-padded ends
        assert np.allclose(c["centroid"][inner], freq, rtol=0.01)
        assert np.allclose(c["rms"][inner], 0.8 / np.sqrt(2), rtol=0.01)
        assert np.all(c["bandwidth"][inner] < 0.05 * freq + 30)


def test_bandwidth_of_band_limited_noise_grows_with_the_band():
    widths = []
    for lo, hi in ((900, 1100), (800, 1200), (500, 1500), (200, 1800)):
        sos = scipy.signal.butter(8, (lo, hi), btype="band", fs=SR, output="sos")
        x = scipy.signal.sosfilt(sos, noise(2.0, amp=1.0))
        c = D.compute(x, SR, 256)
        bw = float(np.median(c["bandwidth"][8:-8]))
        # A flat band [lo, hi] has standard deviation (hi - lo) / sqrt(12) around its centre.
        assert bw == pytest.approx((hi - lo) / np.sqrt(12), rel=0.35, abs=40)
        assert lo < float(np.median(c["centroid"][8:-8])) < hi
        widths.append(bw)
    assert widths == sorted(widths)


@pytest.mark.parametrize("sr,freq", [(16000, 55.0), (16000, 220.0), (16000, 1046.5),
                                     (48000, 82.4), (48000, 440.0), (22050, 1760.0)])
def test_f0_of_a_harmonic_tone_within_10_cents(sr, freq):
    c = D.compute(tone(freq, 1.0, sr, harmonics=6), sr, 256)
    inner = slice(10, -10)
    assert np.all(c["voicing"][inner] > 0.9)
    cents = 1200 * np.abs(np.log2(c["f0"][inner] / freq))
    assert cents.max() < 10


def test_f0_holds_over_unvoiced_frames_and_voicing_drops():
    x = np.concatenate([np.zeros(SR // 2), tone(330), noise(0.5, amp=0.3)])
    c = D.compute(x, SR, 256)
    n0 = SR // 2 // 256
    assert np.all(c["voicing"][: n0 - 4] == 0)
    assert np.all(c["voicing"][-10:] < 0.5)
    inner = slice(n0 + 4, n0 + SR // 256 - 4)
    assert np.allclose(c["f0"][inner], 330, rtol=0.002)
    # Held before and after the tone (the edge frames mix the tone with silence or noise).
    assert np.allclose(c["f0"], 330, rtol=0.03)


def test_brighter_filter_raises_centroid_and_sharpness():
    cs, ss = [], []
    for cutoff in (300, 600, 1200, 2400, 4800, 7000):
        c = D.compute(lowpassed(cutoff), SR, 256)
        cs.append(np.median(c["centroid"]))
        ss.append(np.median(c["sharpness"]))
    assert cs == sorted(cs) and ss == sorted(ss)


def test_more_low_end_raises_boominess():
    base = lowpassed(7000, seed=1)
    sos = scipy.signal.butter(4, 150, fs=SR, output="sos")
    bass = scipy.signal.sosfilt(sos, noise(1.0, seed=2, amp=1.0))
    booms = []
    for gain in (0.0, 0.5, 1.0, 2.0, 4.0):
        booms.append(np.median(D.compute(base + gain * bass, SR, 256)["boominess"]))
    assert booms == sorted(booms) and booms[-1] > booms[0] * 1.5


def test_sharpness_of_a_1khz_tone_is_near_the_reference():
    # The definition of 1 acum: a narrow band at 1 kHz, 60 dB -> 1 acum (Zwicker & Fastl).
    c = D.compute(tone(1000, amp=np.sqrt(2) * 10 ** (-40 / 20)), SR, 256)  # 60 dB SPL
    assert float(np.median(c["sharpness"])) == pytest.approx(1.0, rel=0.35)


@pytest.mark.parametrize("name,signal", [
    ("silence", np.zeros(SR)),
    ("dc", np.full(SR, 0.7)),
    ("clipped", np.clip(10 * tone(220), -1, 1)),
    ("overdriven", 50 * tone(220)),
    ("nan_inf", np.where(np.arange(SR) % 97 == 0, np.nan,
                         np.where(np.arange(SR) % 89 == 0, np.inf, tone(220)))),
    ("denormal", np.full(SR, 1e-310)),
])
def test_robust_inputs_give_finite_curves(name, signal):
    c = D.compute(signal, SR, 256)
    for k, v in c.items():
        assert v.shape == (SR // 256,) and np.isfinite(v).all(), (name, k)
    if name == "silence":
        assert all(np.all(v == 0) for v in c.values())
    if name == "dc":
        inner = slice(4, -4)
        assert np.allclose(c["rms"][inner], 0.7, rtol=1e-3)
        assert np.all(c["centroid"][inner] < 20)


def test_empty_and_short_inputs():
    for n in (0, 1, 255):
        c = D.compute(np.zeros(n), SR, 256)
        assert all(v.shape == (0,) for v in c.values())
    c = D.compute(tone(440, 0.05), SR, 256)
    assert c["rms"].shape == (3,)


def test_stereo_is_averaged_either_layout():
    left, right = tone(440), tone(880)
    mono = D.compute((left + right) / 2, SR, 256)
    for layout in (np.stack([left, right]), np.stack([left, right], axis=1)):
        c = D.compute(layout, SR, 256)
        for k in mono:
            np.testing.assert_array_equal(c[k], mono[k])


def test_bad_rate_or_hop_or_name():
    with pytest.raises(ValueError):
        D.compute(noise(), SR, 16)
    with pytest.raises(ValueError):
        D.compute(noise(), 0, 256)
    with pytest.raises(ValueError):
        D.compute(noise(), SR, 256, names=("loudness",))


@pytest.mark.parametrize("sr,hop", [(16000, 256), (16000, 64), (48000, 2048), (48000, 128)])
def test_torch_batch_agrees_with_numpy(sr, hop):
    rng = np.random.default_rng(3)
    batch = rng.standard_normal((3, int(0.7 * sr))) * 0.1
    batch[0] += tone(196, 0.7, sr, harmonics=5)
    batch[1, : sr // 4] = 0.0
    batch[2] = np.clip(batch[2] * 20, -1, 1)
    names = D.ATTRIBUTES + ("voicing",)
    out = DT.compute_batch(torch.tensor(batch, dtype=torch.float32), sr, hop, names)
    assert out.shape == (3, len(names), batch.shape[1] // hop) and out.dtype == torch.float32
    for i in range(3):
        ref = D.compute(batch[i].astype(np.float32), sr, hop)
        for j, name in enumerate(names):
            np.testing.assert_allclose(out[i, j].numpy(), ref[name], rtol=1e-4, atol=1e-6,
                                       err_msg=name)


def test_torch_batch_edge_cases():
    x = torch.zeros(2, SR)
    x[1, ::50] = float("nan")
    out = DT.compute_batch(x, SR, 256)
    assert torch.isfinite(out).all() and (out == 0).all()
    assert DT.compute_batch(torch.zeros(2, 100), SR, 256).shape == (2, 6, 0)


# GM programs whose FluidR3 samples are in tune and without vibrato (a violin's vibrato or a
# detuned piano sample moves the true f0 away from the nominal pitch): electric piano,
# clean guitar, finger bass, trombone, clarinet, trumpet, synth bass, bass + lead.
GM_TUNED_NOTES = ((4, 48), (4, 72), (27, 45), (27, 69), (33, 33), (33, 52), (57, 46), (57, 60),
                  (71, 55), (71, 79), (56, 60), (56, 77), (38, 36), (38, 47), (87, 50), (87, 74))


def test_f0_of_gm_instrument_notes_within_10_cents():
    from neurorave.models.dataset_sources import fluid
    from neurorave.models.dataset_sources.midi import MidiTrack

    fluid.check_fluidsynth()
    slot, hop = 2.0, 256
    track = MidiTrack()
    for i, (program, pitch) in enumerate(GM_TUNED_NOTES):
        track.program(i * slot, 0, program)
        track.note(i * slot, slot * 0.9, 0, pitch, 100)
        track.silence((i + 1) * slot - 0.002, 0)
    audio = fluid.render(track, len(GM_TUNED_NOTES) * slot, SR)
    n = int(slot * SR)
    for i, (program, pitch) in enumerate(GM_TUNED_NOTES):
        c = D.compute(audio[i * n:(i + 1) * n], SR, hop)
        held = slice(int(0.15 * SR) // hop, int(1.7 * SR) // hop)
        voiced = c["voicing"][held] >= 0.9
        assert voiced.mean() > 0.8, (program, pitch)
        nominal = 440.0 * 2 ** ((pitch - 69) / 12)
        cents = 1200 * np.abs(np.log2(c["f0"][held][voiced] / nominal))
        assert np.mean(cents < 10) >= 0.9, (program, pitch, np.median(cents))


@pytest.mark.gpu
def test_torch_batch_on_cuda_agrees_with_numpy():
    rng = np.random.default_rng(5)
    batch = rng.standard_normal((4, SR)) * 0.1 + tone(262, 1.0, SR, harmonics=4)
    out = DT.compute_batch(torch.tensor(batch, dtype=torch.float32, device="cuda"), SR, 128)
    assert out.device.type == "cuda"
    for i in range(4):
        ref = D.stack(D.compute(batch[i].astype(np.float32), SR, 128))
        np.testing.assert_allclose(out[i].cpu().numpy(), ref, rtol=1e-4, atol=1e-6)


def test_torch_batch_in_blocks_equals_one_pass(monkeypatch):
    x = torch.tensor(np.random.default_rng(7).standard_normal((2, SR)) * 0.2)
    monkeypatch.setattr(DT, "BLOCK_ELEMENTS_CPU", 1 << 30)  # one block
    whole = DT.compute_batch(x, SR, 64)
    monkeypatch.setattr(DT, "BLOCK_ELEMENTS_CPU", 2 * 1024 * 37)  # blocks of 37 frames
    torch.testing.assert_close(DT.compute_batch(x, SR, 64), whole, rtol=1e-12, atol=1e-12)
