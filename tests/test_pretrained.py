"""`make pretrained` (tools/pretrained.py): the recipe of the bundled models, run end to
end on a tiny model and a small gm-drums set, then resumed for more steps."""
import json
import os
import subprocess
import sys

import pytest
import torch
from neurorave.models.runtime.bundle import load_bundle

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPE = [sys.executable, os.path.join(ROOT, "tools", "pretrained.py"), "--models", "gm-drums",
          "--config", "tiny", "--prior-steps", "3", "--data-limit", "24",
          "--skip", "twin", "evaluate"]  # both are covered by their own tests


def _recipe(tmp_path, *extra):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(RECIPE + ["--work", str(tmp_path / "work"), "--install-to",
                                    str(tmp_path / "installed"), *extra],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


@pytest.mark.slow
def test_the_recipe_builds_trains_exports_installs_and_resumes(tmp_path):
    out = _recipe(tmp_path, "--steps", "2")
    for stage in ("data", "train", "prior", "export"):
        assert f"gm-drums: {stage}: neurorave" in out
    installed = tmp_path / "installed" / "gm-drums"
    bundle = load_bundle(str(installed))  # hashes checked: a playable bundle with a prior
    assert bundle.has_prior and bundle.name
    assert {"config.json", "training.json", "model.json"} <= set(os.listdir(installed))
    first = json.loads((installed / "training.json").read_text())
    assert first["frave"]["steps"] == 2 and first["dataset"]["counts"]["train"] > 0
    assert first["prior"]["steps"] == 3 and first["crave"] is None

    # Again with more steps: the run resumes, and the prior starts over on the new latents.
    out = _recipe(tmp_path, "--steps", "4")
    assert "--resume" in out.split("gm-drums: train:")[1].splitlines()[0]
    assert "starts over" in out
    data_builds = json.loads((tmp_path / "work" / "stages.json").read_text())["gm-drums"]["data"]
    assert len(data_builds) == 1  # built once
    summary = json.loads((installed / "training.json").read_text())
    sessions = summary["frave"]["sessions"]
    assert [(s["first_step"], s["last_step"]) for s in sessions] == [(0, 2), (2, 4)]
    assert all("CPU" in s["hardware"] for s in sessions)
    assert summary["prior"]["steps"] == 3 and len(summary["stages"]["prior"]) == 2
    assert load_bundle(str(installed)).meta != bundle.meta  # new weights, new hashes

    # A bundle trained further is not replaced by a shorter run unless asked.
    summary["frave"]["steps"] = 1000
    (installed / "training.json").write_text(json.dumps(summary))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    install_only = RECIPE + ["--work", str(tmp_path / "work"), "--install-to",
                             str(tmp_path / "installed"), "--steps", "4",
                             "--skip", "data", "train", "twin", "prior", "export", "evaluate"]
    refused = subprocess.run(install_only, capture_output=True, text=True, env=env, timeout=600)
    assert refused.returncode != 0 and "trained to 1000 steps" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert json.loads((installed / "training.json").read_text())["frave"]["steps"] == 1000
    forced = subprocess.run(install_only + ["--force"], capture_output=True, text=True, env=env,
                            timeout=600)
    assert forced.returncode == 0, forced.stderr
    assert json.loads((installed / "training.json").read_text())["frave"]["steps"] == 4


def test_the_prior_stays_valid_while_only_the_decoder_trains(tmp_path):
    import importlib.util

    from neurorave.models.config import load_config, save_config
    spec = importlib.util.spec_from_file_location("pretrained", os.path.join(ROOT, "tools",
                                                                             "pretrained.py"))
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    run = tmp_path / "run"
    (run / "weights").mkdir(parents=True)
    cfg = load_config("tiny")
    cfg.training.adversarial_start = 50
    for encoder_steps, saved, expected in ((0, 30, 30), (0, 70, 50), (20, 30, 20), (20, 10, 10)):
        cfg.training.encoder_steps = encoder_steps
        save_config(cfg, run / "config.json")
        (run / "weights" / f"step-{saved:08d}.pt").touch()
        assert recipe.encoder_step(run) == expected, (encoder_steps, saved)
        (run / "weights" / f"step-{saved:08d}.pt").unlink()


def test_the_48k_voices_render_their_data_at_48k_and_ask_for_steps(tmp_path):
    """gm-drums-48k's recipe renders gm-drums at 48 kHz (a dataset of its own beside the
    16 kHz one), and with no installed bundle to reproduce it asks for --steps instead
    of starting the config's 300 000-step GPU budget on a CPU."""
    base = [sys.executable, os.path.join(ROOT, "tools", "pretrained.py"), "--models",
            "gm-drums-48k", "--work", str(tmp_path / "work"), "--install-to",
            str(tmp_path / "installed")]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    built = subprocess.run(base + ["--data-limit", "3", "--skip", "train", "twin", "prior",
                                   "export", "evaluate", "install"],
                           capture_output=True, text=True, env=env, timeout=600)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    assert "--source gm-drums" in built.stdout and "--sr 48000" in built.stdout
    manifest = json.loads((tmp_path / "work" / "data" / "gm-drums-48k" / "manifest.json")
                          .read_text())
    assert manifest["sr"] == 48000
    asked = subprocess.run(base + ["--skip", "data", "twin", "prior", "export", "evaluate",
                                   "install"], capture_output=True, text=True, env=env,
                           timeout=600)
    assert asked.returncode != 0
    assert asked.stderr.strip() == ("pretrained: gm-drums-48k: no installed bundle to "
                                    "reproduce; give --steps N")


def test_a_carried_run_goes_on_from_a_fresh_work_folder(tmp_path):
    """`--carry` keeps a run's newest checkpoint and its prior's in the repository (here
    a temporary folder); a fresh clone's recipe resumes both there instead of starting
    at step 0."""
    carried = tmp_path / "carried"
    train_only = ["--skip", "twin", "export", "evaluate", "install",
                  "--carried", str(carried)]
    env = dict(os.environ, OMP_NUM_THREADS="1")

    def recipe(work, *extra):
        done = subprocess.run(RECIPE + ["--work", str(work), "--install-to",
                                        str(tmp_path / "installed"), *train_only, *extra],
                              capture_output=True, text=True, env=env, timeout=600)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        return done.stdout

    recipe(tmp_path / "first", "--steps", "2")
    out = recipe(tmp_path / "first", "--carry")
    assert "gm-drums: carried step 2" in out
    assert sorted(p.name for p in (carried / "gm-drums").iterdir()) == \
        ["checkpoints", "config.json", "dataset.json", "history.json", "stats.json"]
    assert "gm-drums-prior: carried step 3" in out
    assert sorted(str(p.relative_to(carried / "gm-drums-prior"))
                  for p in (carried / "gm-drums-prior").rglob("*") if p.is_file()) == \
        ["checkpoints/last.pt", "prior.json", "source-step.txt", "weights/last.pt"]
    # The same decoder step (the prior's latents unchanged), more prior steps.
    out = recipe(tmp_path / "fresh", "--steps", "2", "--prior-steps", "5")
    assert "resuming the prior carried" in out
    # The carried run reads as a whole run at once (its weights from its checkpoint).
    carried_weights = torch.load(tmp_path / "fresh" / "runs" / "gm-drums" / "weights" /
                                 "last.pt", weights_only=True)
    trained_weights = torch.load(tmp_path / "first" / "runs" / "gm-drums" / "weights" /
                                 "last.pt", weights_only=True)
    assert carried_weights.keys() == trained_weights.keys()
    assert all(torch.equal(carried_weights[k], trained_weights[k]) for k in trained_weights)
    prior_line = next(line for line in out.splitlines() if "prior: neurorave" in line)
    assert "--resume" in prior_line
    assert json.loads((tmp_path / "fresh" / "runs" / "gm-drums-prior" / "prior.json")
                      .read_text())["metrics"]["step"] == 5
    out = recipe(tmp_path / "fresh", "--steps", "3")
    assert "resuming the run carried" not in out and "--resume" in out
    history = json.loads((tmp_path / "fresh" / "runs" / "gm-drums" / "history.json").read_text())
    assert [(s["first_step"], s["last_step"]) for s in history] == [(0, 2), (2, 3)]
