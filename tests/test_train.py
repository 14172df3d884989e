"""`neurorave train`: tiny models on synthetic datasets, on CPU."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from neurorave.firmware.cli import main as cli_main
from neurorave.models.datastore import write_dataset
from neurorave.models.training.cli import train
from neurorave.models.training.run import load_run

SR = 16000
STEPS = 240


def _sines(n: int, length: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(length) / SR
    rows = []
    for _ in range(n):
        f, amp = rng.uniform(100, 2000), rng.uniform(0.05, 0.8)
        rows.append(amp * np.sin(2 * np.pi * f * t + rng.uniform(0, 6))
                    + 0.01 * rng.standard_normal(length))
    return np.array(rows, dtype=np.float32)


# Tiny nets run faster on one thread, and the machine is shared.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """48 chunks of sines at the store's default hop (256): stats get recomputed at hop 32."""
    out = tmp_path_factory.mktemp("data") / "sines"
    return write_dataset(out, _sines(48, 4096, 0), SR, [f"s{i}" for i in range(48)])


def _config(tmp_path, name="cfg", **sections) -> str:
    lines = ['extends = "tiny"']
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    path = tmp_path / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


class Recorder(pl.Callback):
    def __init__(self):
        self.metrics = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.metrics.append({k: float(v) for k, v in module.last_metrics.items()})


def test_tiny_loss_falls_over_30_steps_and_the_run_folder_is_complete(data, tmp_path):
    rec = Recorder()
    run = tmp_path / "run"
    train("tiny", str(data), str(run), steps=30, progress=False, callbacks=[rec])
    losses = [m["loss/reconstruction"] for m in rec.metrics]
    assert len(losses) == 30
    assert np.mean(losses[-5:]) < 0.9 * np.mean(losses[:5])

    for name in ("config.json", "stats.json", "dataset.json", "checkpoints/last.ckpt",
                 "weights/last.pt", "weights/step-00000030.pt"):
        assert (run / name).exists(), name
    stats = json.loads((run / "stats.json").read_text())
    assert stats["hop"] == 32 and stats["source"].startswith("recomputed")
    assert len(stats["attributes"]["rms"]["bins"]) == 17
    state = torch.load(run / "weights" / "last.pt", weights_only=True)
    assert any(k.startswith("decoder.") for k in state)

    loaded = load_run(run)
    assert loaded.config.name == "tiny"
    audio = torch.from_numpy(_sines(1, 1024, 5))
    with torch.no_grad():
        assert loaded.module(audio).shape == (1, 1, 1024)

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(run / "logs"), size_guidance={"audio": 0, "images": 0})
    events.Reload()
    tags = events.Tags()
    for tag in ("loss/reconstruction", "loss/kl", "latent/accuracy", "latent/accuracy_rms",
                "valid/reconstruction", "valid/latent_accuracy"):
        assert tag in tags["scalars"], tag
    assert "audio/output" in tags["audio"] and "spectrogram/output" in tags["images"]


def test_resume_takes_the_same_next_step(data, tmp_path):
    # The critic starts learning at step 4: the step-3 checkpoint leaves it out (it is
    # still its initialisation), and the resumed run must rebuild it exactly.
    config = _config(tmp_path, training={"checkpoint_every": 3, "adversarial_start": 4})
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(config, str(data), str(straight), steps=6, seed=7, progress=False)
    train(config, str(data), str(resumed), steps=3, seed=7, progress=False)
    model = train(config, str(data), str(resumed), steps=6, seed=7, resume=True, progress=False)
    assert model.completed_steps == 6
    a = torch.load(straight / "weights" / "step-00000006.pt", weights_only=True)
    b = torch.load(resumed / "weights" / "step-00000006.pt", weights_only=True)
    c = torch.load(resumed / "weights" / "step-00000003.pt", weights_only=True)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert not torch.equal(a["decoder.waveform.conv.weight"], c["decoder.waveform.conv.weight"])
    assert any(k.startswith("discriminator.") for k in a)
    assert not any(k.startswith("discriminator.") for k in c)
    saved = torch.load(resumed / "checkpoints" / "step-00000003.ckpt", weights_only=False)
    assert not any(k.startswith("discriminator.") for k in saved["state_dict"])
    assert any(k.startswith("latent_discriminator.") for k in saved["state_dict"])
    loaded = load_run(resumed, "step-00000003.pt").module  # loads, critic and all
    assert torch.equal(loaded.decoder.waveform.conv.weight, c["decoder.waveform.conv.weight"])
    # The run says what each session trained: steps, wall time, hardware.
    history = json.loads((resumed / "history.json").read_text())
    assert [(s["first_step"], s["last_step"]) for s in history] == [(0, 3), (3, 6)]
    assert all(s["wall_s"] > 0 and "CPU" in s["hardware"] for s in history)


def test_adversarial_phase_freezes_the_encoder(data, tmp_path):
    rec = Recorder()
    config = _config(tmp_path, training={"adversarial_start": 3, "checkpoint_every": 3})
    run = tmp_path / "run"
    train(config, str(data), str(run), steps=5, progress=False, callbacks=[rec])
    assert "loss/critic" not in rec.metrics[2] and "loss/critic" in rec.metrics[3]
    assert all(np.isfinite(list(m.values())).all() for m in rec.metrics)
    at3 = torch.load(run / "weights" / "step-00000003.pt", weights_only=True)
    at5 = torch.load(run / "weights" / "step-00000005.pt", weights_only=True)
    for key in at3:
        if key.startswith("encoder."):
            assert torch.equal(at3[key], at5[key]), key
    changed = [k for k in at3 if k.startswith(("decoder.", "discriminator."))
               and not torch.equal(at3[k], at5[k])]
    assert any(k.startswith("decoder.") for k in changed)
    assert any(k.startswith("discriminator.") for k in changed)


def test_bad_inputs_are_one_clear_line(data, tmp_path, capsys):
    def run(*args):
        code = cli_main(["train", *args])
        err = capsys.readouterr().err.strip()
        return code, err

    code, err = run("--config", "tiny", "--data", str(tmp_path / "nope"), "--out",
                    str(tmp_path / "r"))
    assert code == 2 and "no such dataset folder" in err and "\n" not in err
    code, err = run("--config", "tinny", "--data", str(data), "--out", str(tmp_path / "r"))
    assert code == 2 and "no configuration named 'tinny'" in err and "\n" not in err
    bad = _config(tmp_path, "bad", model={"capcity": 3})
    code, err = run("--config", bad, "--data", str(data), "--out", str(tmp_path / "r"))
    assert code == 2 and "unknown key 'model.capcity'" in err and "\n" not in err
    other_rate = write_dataset(tmp_path / "d22", _sines(6, 4096, 1), 22050,
                               [f"x{i}" for i in range(6)])
    code, err = run("--config", "tiny", "--data", str(other_rate), "--out", str(tmp_path / "r"))
    assert code == 2 and "22050 Hz" in err and "--sr 16000" in err and "\n" not in err
    code, err = run("--config", "tiny", "--data", str(data), "--out", str(tmp_path / "r"),
                    "--resume")
    assert code == 2 and "nothing to resume" in err


@pytest.mark.slow
def test_ddp_with_two_cpu_processes(data, tmp_path):
    """Both phases under DDP: reconstruction, then (from step 2) the adversarial phase
    with the encoder frozen, which leaves parameters without gradients."""
    run = tmp_path / "ddp"
    config = tmp_path / "tiny-ddp.toml"
    config.write_text('extends = "tiny"\n[training]\nadversarial_start = 2\n')
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "neurorave.firmware.cli", "train", "--config", str(config),
         "--data", str(data), "--out", str(run), "--steps", "4", "--devices", "2"],
        capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "world_size: 2" in proc.stderr + proc.stdout or "GLOBAL_RANK: 1" in proc.stderr
    state = torch.load(run / "weights" / "last.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def _fader_accuracy(data, tmp_path, weight: float) -> float:
    variant = "frave" if weight > 0 else "crave"
    config = tmp_path / f"fader-{variant}.toml"
    config.write_text(f'''extends = "tiny"
variant = "{variant}"
[model]
attributes = ["rms"]
latent_size = 8
[fader]
weight = {weight}
delay = 0
ramp = 1
hidden = 64
layers = 3
learning_rate = 1e-2
[training]
batch_size = 8
learning_rate = 3e-3
kl_beta = 0.0
adversarial_start = 100000
checkpoint_every = 1000
''')
    rec = Recorder()
    train(str(config), str(data), str(tmp_path / variant), steps=STEPS, progress=False,
          callbacks=[rec])
    return float(np.mean([m["latent/accuracy"] for m in rec.metrics[-STEPS // 4:]]))


@pytest.mark.slow
def test_fader_penalty_drives_latent_accuracy_toward_chance(tmp_path):
    """rms is plainly in z (amplitude scales the encoder's features); chance is 1/16."""
    rng = np.random.default_rng(1)
    t = np.arange(4096) / SR
    chunks = np.array([rng.uniform(0.05, 1.0) * np.sin(2 * np.pi * rng.uniform(200, 1000) * t)
                       for _ in range(64)], dtype=np.float32)
    data = write_dataset(tmp_path / "amps", chunks, SR, [f"a{i}" for i in range(64)])
    kept = _fader_accuracy(data, tmp_path, 0.0)
    removed = _fader_accuracy(data, tmp_path, 5.0)
    assert kept > 0.15, kept
    assert removed < 0.12 and removed < kept - 0.07, (kept, removed)


def test_store_curves_are_used_when_the_store_hop_is_the_model_hop(tmp_path):
    from neurorave.models.config import load_config
    from neurorave.models.datastore import open_dataset
    from neurorave.models.descriptors_torch import compute_batch
    from neurorave.models.training.data import StepBatches
    from neurorave.models.training.stats import resolve_stats

    cfg = load_config(_config(tmp_path, training={"chunk": 4096}))
    swells = _sines(8, 8192, 2) * np.linspace(0.05, 1.0, 8192, dtype=np.float32) ** 2
    store = open_dataset(write_dataset(tmp_path / "hop32", swells, SR,
                                       [f"h{i}" for i in range(8)], hop=cfg.model.hop))
    stats = resolve_stats(store, cfg, tmp_path)
    assert stats["source"] == "dataset" and stats["hop"] == 32
    batch = StepBatches(store, cfg, seed=0, stop=10)[3]
    assert batch["curves"].shape == (cfg.training.batch_size, len(cfg.model.attributes),
                                     cfg.training.chunk // cfg.model.hop)
    recomputed = compute_batch(batch["audio"], SR, cfg.model.hop, cfg.model.attributes).float()
    # Away from the crop's edges (where the store had real context) both agree.
    inner = slice(20, -20)  # the analysis window spans 32 frames
    rms = cfg.model.attributes.index("rms")
    assert batch["curves"][:, rms, inner].numel() >= 4 * 80
    assert torch.allclose(batch["curves"][:, rms, inner], recomputed[:, rms, inner], rtol=1e-3,
                          atol=1e-4)


def test_mixed_precision_path_trains_on_cpu_through_every_phase(data, tmp_path):
    # The code a GPU run takes (autocast, the losses kept in float32) checked on every
    # machine: bf16 autocast also exists on CPU. All phases: fader, control, adversarial.
    class Dtypes(pl.Callback):
        seen = set()

        def on_fit_start(self, trainer, module):
            conv = next(m for m in module.decoder.modules() if isinstance(m, torch.nn.Conv1d))
            conv.register_forward_hook(lambda m, i, out: self.seen.add(out.dtype))

    cfg = _config(tmp_path, training={"precision": "bf16-mixed", "control_start": 3,
                                      "control_weight": 1.0, "adversarial_start": 6})
    rec, dtypes = Recorder(), Dtypes()
    model = train(cfg, str(data), str(tmp_path / "bf16"), steps=9, progress=False,
                  callbacks=[rec, dtypes])
    assert model.completed_steps == 9
    assert torch.bfloat16 in dtypes.seen  # autocast really ran the decoder in bf16
    assert "loss/control" in rec.metrics[3] and "loss/adversarial" in rec.metrics[-1]
    assert all(np.isfinite(list(m.values())).all() for m in rec.metrics)
    state = torch.load(tmp_path / "bf16" / "weights" / "last.pt", weights_only=True)
    assert {v.dtype for v in state.values() if v.is_floating_point()} == {torch.float32}


@pytest.mark.gpu
def test_tiny_trains_on_gpu_in_mixed_precision(data, tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("this torch build has no CUDA device")
    class Device(pl.Callback):
        seen = set()

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            self.seen.add((module.device.type, str(trainer.precision)))

    rec, device = Recorder(), Device()
    model = train("tiny", str(data), str(tmp_path / "gpu"), steps=5, progress=False,
                  callbacks=[rec, device])
    assert model.completed_steps == 5
    assert device.seen <= {("cuda", "bf16-mixed"), ("cuda", "16-mixed")} and device.seen
    assert all(np.isfinite(list(m.values())).all() for m in rec.metrics)
    state = torch.load(tmp_path / "gpu" / "weights" / "last.pt", weights_only=True)
    assert all(v.device.type == "cpu" for v in state.values())


def test_f0_is_normalised_on_a_log_scale_and_the_rest_linearly():
    from neurorave.models.training.stats import log_floors, normalise_curves

    names = ["rms", "f0"]
    lo, hi = torch.tensor([0.0, 0.0]), torch.tensor([0.5, 1760.0])
    raw = torch.tensor([[[0.0, 0.125, 0.25, 0.5, 0.75],
                         [0.0, 110.0, 220.0, 440.0, 880.0]]])
    out = normalise_curves(raw, lo, hi, log_floors(names))[0]
    assert torch.allclose(out[0], torch.tensor([-1.0, -0.5, 0.0, 1.0, 1.0]))  # linear, clipped
    octave = out[1, 2:] - out[1, 1:-1]
    assert torch.allclose(octave, octave[0].expand(3), atol=1e-6) and octave[0] > 0
    assert out[1, 0] == -1.0 and out[1, -1] < 1.0  # unvoiced 0 Hz sits at the floor


def test_log_rms_normalises_rms_in_db_from_its_floor():
    from neurorave.models.training.stats import RMS_FLOOR, log_floors, normalise_curves

    lo, hi = torch.tensor([0.0]), torch.tensor([1.0])
    # 0, -80 (the floor), -60, -40, -20 and 0 dBFS
    raw = torch.tensor([[[0.0, RMS_FLOOR, 1e-3, 1e-2, 1e-1, 1.0]]], requires_grad=True)
    out = normalise_curves(raw, lo, hi, log_floors(["rms"], log_rms=True))[0, 0]
    assert torch.allclose(out, torch.tensor([-1.0, -1.0, -0.5, 0.0, 0.5, 1.0]), atol=1e-6)
    out.sum().backward()  # finite gradients, silence included
    assert torch.isfinite(raw.grad).all()
    linear = normalise_curves(raw.detach(), lo, hi, log_floors(["rms"]))[0, 0]
    assert float(linear[3]) == pytest.approx(-0.98)  # -40 dBFS: a sliver of the range


def test_the_control_loss_finds_silence_on_the_scale_rms_is_read_on(data, tmp_path):
    import math

    from neurorave.models.audibility import AUDIBLE_RMS
    from neurorave.models.training.stats import RMS_FLOOR

    levels = {}
    for log_rms in (False, True):
        run = tmp_path / f"log-{log_rms}"
        train(_config(tmp_path, name=f"log-{log_rms}", model={"log_rms": log_rms}),
              str(data), str(run), steps=1, progress=False)
        module = load_run(run).module
        r, level = module.silence_level()
        lo, hi = float(module.attr_min[r]), float(module.attr_max[r])
        if log_rms:
            lo, hi, at = math.log(max(lo, RMS_FLOOR)), math.log(hi), math.log(AUDIBLE_RMS)
        else:
            at = AUDIBLE_RMS
        assert level == pytest.approx(2 * (at - lo) / (hi - lo) - 1, abs=1e-5)
        levels[log_rms] = level
    assert levels[True] != pytest.approx(levels[False], abs=0.1)


def test_log_rms_needs_rms(tmp_path):
    from neurorave.common.errors import UserError
    from neurorave.models.config import load_config

    path = _config(tmp_path, model={"attributes": ["centroid"], "log_rms": True})
    with pytest.raises(UserError, match="model.log_rms"):
        load_config(path)


def test_control_loss_from_its_step_and_a_frozen_encoder_from_encoder_steps(data, tmp_path):
    rec = Recorder()
    config = _config(tmp_path, training={"control_weight": 2.0, "control_start": 2,
                                         "encoder_steps": 3, "checkpoint_every": 3})
    run = tmp_path / "run"
    train(config, str(data), str(run), steps=6, progress=False, callbacks=[rec])
    assert all("loss/control" not in m for m in rec.metrics[:2])
    control = [m["loss/control"] for m in rec.metrics[2:]]
    assert len(control) == 4 and all(np.isfinite(control)) and all(c > 0 for c in control)
    # The encoder and the fader learn until step 3, the decoder goes on.
    assert "latent/accuracy" in rec.metrics[2] and "latent/accuracy" not in rec.metrics[3]
    at3 = torch.load(run / "weights" / "step-00000003.pt", weights_only=True)
    at6 = torch.load(run / "weights" / "step-00000006.pt", weights_only=True)
    for key in at3:
        if key.startswith(("encoder.", "latent_discriminator.")):
            assert torch.equal(at3[key], at6[key]), key
    assert any(not torch.equal(at3[k], at6[k]) for k in at3 if k.startswith("decoder."))
    # A resumed run past encoder_steps keeps the encoder frozen.
    train(config, str(data), str(run), steps=8, resume=True, progress=False)
    at8 = torch.load(run / "weights" / "step-00000008.pt", weights_only=True)
    assert all(torch.equal(at3[k], at8[k]) for k in at3 if k.startswith("encoder."))


def test_control_config_is_checked(tmp_path):
    from neurorave.common.errors import UserError
    from neurorave.models.config import load_config
    for training, why in (({"control_weight": -1.0}, "training.control_weight"),
                          ({"encoder_steps": -5}, "training.encoder_steps")):
        path = _config(tmp_path, training=training)
        with pytest.raises(UserError, match=why):
            load_config(path)
    path = tmp_path / "only_f0.toml"
    path.write_text('extends = "tiny"\n[model]\nattributes = ["f0"]\n'
                    '[training]\ncontrol_weight = 1.0\n')
    with pytest.raises(UserError, match="other than f0"):
        load_config(path)


def test_a_new_decoder_trains_on_another_runs_frozen_encoder(data, tmp_path):
    """--encoder-from: the run starts at encoder_steps with the source's encoder and
    fader, which never move; only the decoder learns (a decoder change keeps a prior)."""
    first = _config(tmp_path, "first", training={"encoder_steps": 3, "checkpoint_every": 3})
    source = tmp_path / "source"
    train(first, str(data), str(source), steps=3, progress=False)
    theirs = torch.load(source / "weights" / "last.pt", weights_only=True)
    second = _config(tmp_path, "second", model={"upsample": "repeat"},
                     training={"encoder_steps": 3, "checkpoint_every": 2})
    run = tmp_path / "run"
    rec = Recorder()
    train(second, str(data), str(run), steps=7, progress=False, callbacks=[rec],
          encoder_from=str(source))
    assert len(rec.metrics) == 4  # steps 3..6
    assert sorted(p.name for p in (run / "weights").glob("step-*.pt")) == \
        ["step-00000004.pt", "step-00000006.pt", "step-00000007.pt"]
    mine = torch.load(run / "weights" / "last.pt", weights_only=True)
    for key in theirs:
        if key.startswith(("encoder.", "latent_discriminator.")):
            assert torch.equal(theirs[key], mine[key]), key
    assert "latent/accuracy" not in rec.metrics[0]  # the fader no longer learns
    history = json.loads((run / "history.json").read_text())
    assert [(s["first_step"], s["last_step"]) for s in history] == [(0, 3), (3, 7)]
    assert history[0]["encoder_from"] == str(source.resolve())
    assert "encoder_from" not in history[1]
    # It resumes as any run does, encoder still frozen.
    train(second, str(data), str(run), steps=9, resume=True, progress=False)
    later = torch.load(run / "weights" / "last.pt", weights_only=True)
    assert all(torch.equal(theirs[k], later[k]) for k in theirs if k.startswith("encoder."))
    assert any(not torch.equal(mine[k], later[k]) for k in mine if k.startswith("decoder."))


def test_encoder_from_a_run_still_learning_is_one_clear_line(data, tmp_path, capsys):
    first = _config(tmp_path, "first", training={"encoder_steps": 5, "checkpoint_every": 2})
    source = tmp_path / "source"
    train(first, str(data), str(source), steps=2, progress=False)
    code = cli_main(["train", "--config", first, "--data", str(data), "--out",
                     str(tmp_path / "run"), "--steps", "8", "--encoder-from", str(source)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1
    assert "its encoder is still learning (step 2 of training.encoder_steps 5)" in err[0]


def test_the_waveform_heads_offset_is_a_loss_when_weighted(data, tmp_path):
    runs = {}
    for weight in (0.0, 10.0):
        rec = Recorder()
        config = _config(tmp_path, f"w{weight:g}", model={"band_dc_block": 20.0},
                         training={"band_dc_weight": weight})
        train(config, str(data), str(tmp_path / f"run{weight:g}"), steps=3, progress=False,
              callbacks=[rec])
        runs[weight] = rec.metrics
    offsets = [m["loss/band_dc"] for m in runs[10.0]]
    assert len(offsets) == 3 and all(0.0 <= s <= 1.0 for s in offsets)
    assert all("loss/band_dc" not in m for m in runs[0.0])
    # The same first step (same seed, same batch): the weighted loss is 10 x offset more.
    plain, weighted = runs[0.0][0], runs[10.0][0]
    assert weighted["loss/reconstruction"] == pytest.approx(plain["loss/reconstruction"])
    assert weighted["loss/generator"] - plain["loss/generator"] == \
        pytest.approx(10.0 * weighted["loss/band_dc"], rel=1e-4, abs=1e-5)
