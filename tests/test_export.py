"""`neurorave export`: a trained tiny run becomes a bundle whose ONNX graphs, run frame by
frame in the device engine (ONNX Runtime through `open_engine`), equal the trained torch
networks run over the whole sequence."""
import tracemalloc

import numpy as np
import onnx
import pytest
import torch
from neurorave.firmware.cli import main as cli_main
from neurorave.models.datastore import write_dataset
from neurorave.models.export.command import export_run
from neurorave.models.runtime.bundle import load_bundle
from neurorave.models.runtime.engines import open_engine
from neurorave.models.training.cli import train
from neurorave.models.training.run import load_run

SR = 16000
FRAMES = 72  # >= 64 latent frames per parity check


def _sines(n, length, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(length) / SR
    rows = [rng.uniform(0.05, 0.8) * np.sin(2 * np.pi * rng.uniform(100, 2000) * t
                                            + rng.uniform(0, 6))
            + 0.01 * rng.standard_normal(length) for _ in range(n)]
    return np.array(rows, dtype=np.float32)


# Tiny nets run faster on one thread, and the machine is shared.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny run trained a few steps (weights away from their initial values)."""
    root = tmp_path_factory.mktemp("export")
    data = write_dataset(root / "data", _sines(24, 4096, 0), SR, [f"s{i}" for i in range(24)])
    torch.set_num_threads(1)
    # f0 among the attributes: its log-scale normalisation is baked into the graph too,
    # and so is the harmonic source that plays it (its phase is a streamed state); rms
    # in dB and the level stage (its gain is a streamed state) too.
    config = root / "tiny-f0.toml"
    config.write_text('extends = "tiny"\n[model]\nattributes = ["rms", "centroid", '
                      '"bandwidth", "sharpness", "boominess", "f0"]\nharmonics = 4\n'
                      'level = true\nlog_rms = true\n')
    train(str(config), str(data), str(root / "run"), steps=12, progress=False)
    return root


@pytest.fixture(scope="module")
def bundle_path(trained):
    return export_run(str(trained / "run"), str(trained / "bundle"), fidelity=1.0)


@pytest.fixture(scope="module")
def run(trained, bundle_path):
    return load_run(trained / "run")


def _pca(meta, k):
    pca = meta["pca"]
    mean = torch.tensor(pca["mean"], dtype=torch.float32)[None, :, None]
    comps = torch.tensor(pca["components"], dtype=torch.float32)[:k]  # [k, L]
    return mean, comps


def _torch_decode(run, meta, z_pca, raw, noise):
    """The trained decoder over the whole sequence, PCA and normalisation applied in torch."""
    mean, comps = _pca(meta, z_pca.shape[1])
    with torch.no_grad():
        z = torch.matmul(comps.T, torch.from_numpy(z_pca)) + mean
        attrs = run.module.normalise(torch.from_numpy(raw))
        return run.module.decoder(z, attrs, torch.from_numpy(noise)).numpy()


def _stream_decoder(engine, z_pca, raw, noise):
    dec = engine.graphs["decoder"]
    n = dec.spec.frames_per_call
    per_call = dec.inputs["noise"].shape[-1]
    blocks = []
    for c in range(z_pca.shape[-1] // n):
        dec.inputs["z"][...] = z_pca[..., c * n:(c + 1) * n]
        dec.inputs["attributes"][...] = raw[..., c * n:(c + 1) * n]
        dec.inputs["noise"][...] = noise[..., c * per_call:(c + 1) * per_call]
        dec.run()
        blocks.append(dec.outputs["audio"].copy())
    return np.concatenate(blocks, axis=-1)


def _inputs(bundle, run, frames, seed):
    rng = np.random.default_rng(seed)
    m = run.config.model
    z = rng.standard_normal((1, bundle.latent_size, frames)).astype(np.float32)
    lo = np.array([a.min for a in bundle.attributes], np.float32)[None, :, None]
    hi = np.array([a.max for a in bundle.attributes], np.float32)[None, :, None]
    # Raw values, a little beyond the training range too (the graph clips like training).
    raw = (lo + (hi - lo) * rng.uniform(-0.1, 1.1, (1, len(lo), frames))).astype(np.float32)
    noise = rng.uniform(-1, 1, (1, m.bands, frames * m.hop // m.bands)).astype(np.float32)
    return z, raw, noise


def test_graphs_pass_the_checker_at_opset_13_and_model_json_is_complete(bundle_path, run):
    meta = load_bundle(bundle_path).meta
    for role in ("decoder", "encoder"):
        model = onnx.load(f"{bundle_path}/{role}.onnx")
        onnx.checker.check_model(model, full_check=True)
        assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [13]
        graph = meta["graphs"][role]
        assert graph["macs_per_frame"] > 0 and graph["states"]
        assert all(d == 1 for d in [s["shape"][0] for s in graph["states"]])  # batch 1
    assert meta["opset"] == 13 and meta["frame_size"] == run.config.model.hop
    assert [a["name"] for a in meta["attributes"]] == list(run.config.model.attributes)
    stats = run.stats["attributes"]
    assert meta["attributes"][1] == {"name": "centroid", "min": stats["centroid"]["min"],
                                     "max": stats["centroid"]["max"], "unit": "Hz"}
    assert meta["graphs"]["decoder"]["noise"][0]["input"] == "noise"
    bundle = load_bundle(bundle_path)
    assert bundle.graphs["decoder"].macs_per_frame == meta["graphs"]["decoder"]["macs_per_frame"]
    assert bundle.latent_size == run.config.model.latent_size  # fidelity 1.0 exposes all


def test_pca_orders_dims_by_variance_and_is_orthonormal(bundle_path):
    pca = load_bundle(bundle_path).meta["pca"]
    comps = np.array(pca["components"])
    assert np.allclose(comps @ comps.T, np.eye(len(comps)), atol=1e-6)
    ratio = np.array(pca["explained_variance_ratio"])
    assert np.all(np.diff(ratio) <= 1e-12) and abs(ratio.sum() - 1) < 1e-9


def test_decoder_frame_by_frame_equals_torch_over_the_sequence(bundle_path, run):
    bundle = load_bundle(bundle_path)
    engine = open_engine(bundle, "ort-cpu")
    meta = bundle.meta
    z, raw, noise = _inputs(bundle, run, FRAMES, 1)
    streamed = _stream_decoder(engine, z, raw, noise)
    offline = _torch_decode(run, meta, z, raw, noise)
    assert streamed.shape == offline.shape == (1, 1, FRAMES * bundle.frame_size)
    assert np.abs(offline).max() > 1e-3  # a real signal, not silence on both sides
    assert float(np.abs(streamed - offline).max()) <= 1e-4


def test_the_graph_plays_the_rms_asked_through_the_log_scale_and_the_level_stage(bundle_path,
                                                                               run):
    bundle = load_bundle(bundle_path)
    engine = open_engine(bundle, "ort-cpu")
    z, raw, noise = _inputs(bundle, run, FRAMES, 2)
    rms_at = [a.name for a in bundle.attributes].index("rms")
    half, rms = FRAMES // 2, bundle.attributes[rms_at]
    quiet, loud = max(rms.min, 1e-3) * 1.5, rms.max * 0.7  # inside the range it learned
    raw[0, rms_at, :half], raw[0, rms_at, half:] = quiet, loud
    audio = _stream_decoder(engine, z, raw, noise)[0, 0]
    frames = audio.reshape(FRAMES, bundle.frame_size)
    level = np.sqrt((frames.astype(np.float64) ** 2).mean(-1))
    assert np.median(level[2:half]) == pytest.approx(quiet, rel=0.1)
    assert np.median(level[half + 2:]) == pytest.approx(loud, rel=0.1)


def test_encoder_then_decoder_equals_torch(bundle_path, run, trained):
    bundle = load_bundle(bundle_path)
    engine = open_engine(bundle, "ort-cpu")
    hop = bundle.frame_size
    audio = _sines(1, FRAMES * hop, 7)[None]  # [1, 1, T]
    enc = engine.graphs["encoder"]
    zs = []
    for f in range(FRAMES):
        enc.inputs["audio"][...] = audio[..., f * hop:(f + 1) * hop]
        enc.run()
        zs.append(enc.outputs["z"].copy())
    z_stream = np.concatenate(zs, axis=-1)
    mean, comps = _pca(bundle.meta, bundle.latent_size)
    with torch.no_grad():
        latent, _ = run.module.encoder(torch.from_numpy(audio))
        z_torch = torch.matmul(comps, latent - mean).numpy()
    assert float(np.abs(z_stream - z_torch).max()) <= 1e-4
    _, raw, noise = _inputs(bundle, run, FRAMES, 3)
    streamed = _stream_decoder(engine, z_stream, raw, noise)
    offline = _torch_decode(run, bundle.meta, z_torch, raw, noise)
    assert float(np.abs(streamed - offline).max()) <= 1e-4


def test_reset_reproduces_the_first_output_exactly(bundle_path, run):
    engine = open_engine(load_bundle(bundle_path), "ort-cpu")
    dec = engine.graphs["decoder"]

    def play(frames):
        out = []
        for f in range(frames):
            dec.inputs["z"][...] = 0.5 * np.sin(f)
            dec.fill_noise()
            dec.run()
            out.append(dec.outputs["audio"].copy())
        return np.concatenate(out, axis=-1)

    first = play(16)
    engine.reset()
    assert np.array_equal(play(16), first)
    assert not np.array_equal(play(16), first)  # without a reset, state and noise move on


def test_frames_per_call_and_fidelity(trained, run):
    path = export_run(str(trained / "run"), str(trained / "bundle4"), fidelity=0.6,
                      frames_per_call=4)
    bundle = load_bundle(path)
    ratio = np.cumsum(bundle.meta["pca"]["explained_variance_ratio"])
    k = bundle.latent_size
    assert ratio[k - 1] >= 0.6 and (k == 1 or ratio[k - 2] < 0.6)
    assert bundle.graphs["decoder"].frames_per_call == 4
    assert bundle.graphs["decoder"].inputs[0].shape == (1, k, 4)
    engine = open_engine(bundle, "ort-cpu", roles=["decoder"])
    z, raw, noise = _inputs(bundle, run, 64, 5)
    streamed = _stream_decoder(engine, z, raw, noise)
    offline = _torch_decode(run, bundle.meta, z, raw, noise)
    assert float(np.abs(streamed - offline).max()) <= 1e-4


def test_real_decoder_hot_loop_allocates_nothing(bundle_path):
    dec = open_engine(load_bundle(bundle_path), "ort-cpu").graphs["decoder"]
    for _ in range(5):
        dec.fill_noise()
        dec.run()
    tracemalloc.start()
    dec.fill_noise()
    dec.run()
    before = tracemalloc.take_snapshot()
    for _ in range(300):
        dec.fill_noise()
        dec.run()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert grown < 4096, f"the hot loop allocated {grown} bytes over 300 calls"


@pytest.mark.parametrize("argv, words", [
    (["export", "{root}/data", "--out", "{root}/x"], "not a training run folder"),
    (["export", "--out", "{root}/x"], "name the training RUN"),
    (["export", "--reference", "rave-v9", "--out", "{root}/x"], "unknown reference"),
    (["export", "{root}/run", "--out", "{root}/x", "--fidelity", "1.5"], "--fidelity"),
    (["export", "{root}/run", "--out", "{root}/x", "--frames-per-call", "0"], "frames-per-call"),
    (["export", "{root}/run", "--out", "{root}/data"], "not a bundle folder"),
])
def test_bad_export_requests_are_one_line(trained, capsys, argv, words):
    status = cli_main([a.format(root=trained) for a in argv])
    err = capsys.readouterr().err
    assert status != 0 and words in err and len(err.strip().splitlines()) == 1, err
