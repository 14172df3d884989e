#!/usr/bin/env python3
"""Reproduce the bundled models from scratch: `make pretrained` runs this.

For each model (gm-notes, gm-drums at 16 kHz; gm-notes-48k, gm-drums-48k, the
low-latency voices): build its dataset, train F-RAVE and its C-RAVE twin, train the
joint prior on the F-RAVE run, export both bundles, evaluate the F-RAVE bundle on the
test split against its twin (and play it as the module does), then install bundle,
config, training summary and metrics in models/pretrained/NAME.

Every stage picks up where the last call left it: run it again with the same --work
folder and a larger --steps to train on, on CPU or GPU, across as many sessions as it
takes (each run's history.json records the steps, wall time and hardware of each).

A run too long for one sitting travels in the repository: `--carry` copies each model's
newest checkpoint (about 8 MB for the 48 kHz voices until phase 2: the waveform critic, not yet
trained, is left out) with the run's config, stats and history into
carried-runs/NAME, and a later `make pretrained` on a fresh clone starts that
run from there instead of from step 0 (the dataset is rendered again, the same). A prior
in progress is carried too (carried-runs/NAME-prior).

    tools/pretrained.py [--models gm-notes gm-drums gm-notes-48k gm-drums-48k] [--steps N]
                        [--prior-steps N] [--devices N] [--skip twin] [--eval-limit N]
                        [--work DIR] [--carry] ...
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

ROOT = Path(__file__).resolve().parent.parent
# model -> (dataset source, sample rate (None: the source's own), prior configuration).
# Each model trains the configuration of its own name and its twin NAME-crave.
MODELS = {
    "gm-notes": ("gm-notes", None, "prior"),
    "gm-drums": ("gm-drums", None, "prior"),
    "gm-notes-48k": ("gm-notes", 48000, "prior-48k"),
    "gm-drums-48k": ("gm-drums", 48000, "prior-48k"),
}
# What gate 1 starts by default (`neurorave export --gate`), as a gate into a Eurorack
# voice means: a drum one hit a trigger, a note voice one note a gate, released when the
# gate falls. gm-notes-48k at step 8 000, `benchmarks/gate_onsets.py --seconds 30
# --gate-mode M`, gates answered at 2 Hz / 8 Hz: phrase 48 / 164 of 59 / 239, hit 59 /
# 185, note 59 / 221 (a held note rang too loud for the next one to rise over it).
GATE_MODE = {"gm-drums-48k": "hit", "gm-notes-48k": "note"}
# The phrase lead (`neurorave export --lead`): at 256 samples a frame a gate's attack
# comes as soon without one (gm-notes-48k, step 8 000: 59 / 222 of 59 / 239 gates answered
# at 2 / 8 Hz against 59 / 221 with the default 1), and a gate's frame (or its twin)
# costs one render, not two: bench_daemon gate-to-DAC p99 10.5 ms against 15.3.
LEAD = {"gm-drums-48k": 0, "gm-notes-48k": 0}
STAGES = ("data", "train", "twin", "prior", "export", "evaluate", "install")
MAX_BUNDLE_MB = 20.0
CARRIED = ROOT / "carried-runs"  # runs in progress, in the repository (not installed)
CARRIED_FILES = ("config.json", "stats.json", "history.json", "dataset.json")
CARRIED_PRIOR_FILES = ("checkpoints/last.pt", "weights/last.pt", "prior.json",
                       "source-step.txt")
NEURORAVE = [sys.executable, "-m", "neurorave.firmware.cli"]


def say(text: str) -> None:
    print(f"pretrained: {text}", flush=True)


def hardware() -> str:
    """What this machine offers a stage, in words."""
    import torch
    from neurorave.models.training.callbacks import cpu_name

    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    return f"CPU, {torch.get_num_threads()} thread(s), {cpu_name()}"


class Recipe:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.work = Path(args.work).resolve()
        self.stages_file = self.work / "stages.json"

    # ---- bookkeeping ----------------------------------------------------------------
    def _stages(self) -> Dict[str, Any]:
        if self.stages_file.exists():
            return json.loads(self.stages_file.read_text(encoding="utf-8"))
        return {}

    def _record(self, name: str, stage: str, seconds: float, command: List[str]) -> None:
        stages = self._stages()
        entry = {"seconds": round(seconds, 1), "hardware": hardware(),
                 "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 "command": shown(command)}
        stages.setdefault(name, {}).setdefault(stage, []).append(entry)
        self.work.mkdir(parents=True, exist_ok=True)
        self.stages_file.write_text(json.dumps(stages, indent=1) + "\n", encoding="utf-8")

    def _run(self, name: str, stage: str, command: List[str]) -> None:
        say(f"{name}: {stage}: {shown(command)}")
        start = time.perf_counter()
        code = subprocess.call([str(c) for c in command], cwd=str(ROOT))
        if code != 0:
            raise SystemExit(f"pretrained: {name}: {stage} failed (exit {code})")
        self._record(name, stage, time.perf_counter() - start, command)

    # ---- paths ----------------------------------------------------------------------
    def data(self, name: str) -> Path:
        return self.work / "data" / name

    def run_dir(self, name: str) -> Path:
        return self.work / "runs" / name

    def bundle(self, name: str) -> Path:
        return self.work / "bundles" / name

    # ---- stages ---------------------------------------------------------------------
    def build_data(self, name: str) -> None:
        if (self.data(name) / "manifest.json").exists():
            return
        source, rate, _ = MODELS[name]
        command = NEURORAVE + ["dataset", "build", "--source", source, "--out", self.data(name)]
        if rate:
            command += ["--sr", str(rate)]
        if self.args.data_limit:
            command += ["--limit", str(self.args.data_limit)]
        self._run(name, "data", command)

    def config(self, name: str) -> str:
        return self.args.config or name

    def train(self, name: str, run_name: str, config: str, stage: str) -> None:
        from neurorave.models.config import load_config

        run = self.run_dir(run_name)
        # By default, as far as the installed bundle was trained: `make pretrained` on a
        # fresh clone reproduces it (the configs' own steps are a GPU budget).
        mine = not self.args.config  # the installed bundle's own configuration
        target = self.args.steps or (self.installed_steps(name, run_name) if mine else 0)
        if not target and mine:
            # Nothing installed to reproduce: the configs' own steps are a GPU budget
            # (300 000), not something to start by default on a CPU.
            raise SystemExit(f"pretrained: {run_name}: no installed bundle to reproduce; "
                             "give --steps N")
        target = target or load_config(config).training.steps
        self.take_carried(run_name)
        done = trained_steps(run)
        if done >= target:
            say(f"{run_name}: {done} steps trained (target {target})")
            return
        command = NEURORAVE + ["train", "--config", config, "--data", self.data(name),
                               "--out", run, "--steps", str(target), "--seed", "1"]
        if (run / "checkpoints" / "last.ckpt").exists():
            command.append("--resume")
        if self.args.devices:
            command += ["--devices", str(self.args.devices)]
        self._run(name, stage, command)

    def take_carried(self, run_name: str) -> None:
        """Start from the run the repository carries, when the work folder has none."""
        carried, run = Path(self.args.carried) / run_name, self.run_dir(run_name)
        if (run / "checkpoints" / "last.ckpt").exists() or \
                not (carried / "checkpoints" / "last.ckpt").exists():
            return
        shutil.copytree(carried, run, dirs_exist_ok=True)
        weights_from_checkpoint(run)
        say(f"{run_name}: resuming the run carried in {shown_path(carried)} at step "
            f"{trained_steps(run)}")

    def carry(self, run_name: str) -> None:
        """Copy the run's newest checkpoint and its records into the repository."""
        run, carried = self.run_dir(run_name), Path(self.args.carried) / run_name
        last = run / "checkpoints" / "last.ckpt"
        if not last.exists():
            say(f"{run_name}: nothing to carry (no checkpoint)")
            return
        size_mb = last.stat().st_size / 1e6
        if size_mb > MAX_BUNDLE_MB:
            raise SystemExit(f"pretrained: {run_name}: the checkpoint is {size_mb:.1f} MB, over "
                             f"{MAX_BUNDLE_MB:.0f} MB: too big to carry")
        if carried.exists():
            shutil.rmtree(carried)
        (carried / "checkpoints").mkdir(parents=True)
        shutil.copyfile(last, carried / "checkpoints" / "last.ckpt")
        for name in CARRIED_FILES:
            if (run / name).exists():
                shutil.copyfile(run / name, carried / name)
        say(f"{run_name}: carried step {trained_steps(run)} in "
            f"{shown_path(carried)} ({size_mb:.1f} MB)")

    def take_carried_prior(self, name: str) -> None:
        """Start the prior from the one the repository carries, when the work folder has
        none (it is trained on the encoder's latents, frozen from training.encoder_steps
        on, so it can train while the decoder still does)."""
        carried, prior = Path(self.args.carried) / (name + "-prior"), \
            self.run_dir(name + "-prior")
        if (prior / "checkpoints" / "last.pt").exists() or \
                not (carried / "checkpoints" / "last.pt").exists():
            return
        shutil.copytree(carried, prior, dirs_exist_ok=True)
        say(f"{name}-prior: resuming the prior carried in {shown_path(carried)} at step "
            f"{prior_steps(prior)}")

    def carry_prior(self, name: str) -> None:
        """Copy the prior's checkpoint, weights and records into the repository."""
        prior, carried = self.run_dir(name + "-prior"), Path(self.args.carried) / (name + "-prior")
        if not (prior / "checkpoints" / "last.pt").exists():
            return
        if carried.exists():
            shutil.rmtree(carried)
        for part in CARRIED_PRIOR_FILES:
            if (prior / part).exists():
                (carried / part).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(prior / part, carried / part)
        size_mb = sum(p.stat().st_size for p in carried.rglob("*") if p.is_file()) / 1e6
        say(f"{name}-prior: carried step {prior_steps(prior)} in {shown_path(carried)} "
            f"({size_mb:.1f} MB)")

    def prior(self, name: str) -> None:
        self.take_carried_prior(name)
        run, prior = self.run_dir(name), self.run_dir(name + "-prior")
        source_step = encoder_step(run)
        stamp = prior / "source-step.txt"
        if prior.exists() and (not stamp.exists() or stamp.read_text().strip() != str(source_step)):
            say(f"{name}: the F-RAVE run's encoder moved on to step {source_step}; the prior "
                "starts over")
            shutil.rmtree(prior)
        prior_config = MODELS[name][2]
        target = self.args.prior_steps or prior_config_steps(prior_config)
        done = prior_steps(prior)
        if done >= target:
            say(f"{name}: prior trained {done} steps (target {target})")
            return
        command = NEURORAVE + ["train", "--config", prior_config, "--source", run, "--data",
                               self.data(name), "--out", prior, "--seed", "1",
                               "--steps", str(target)]
        if (prior / "checkpoints" / "last.pt").exists():
            command.append("--resume")
        self._run(name, "prior", command)
        stamp.write_text(f"{source_step}\n")

    def export(self, name: str) -> None:
        prior = self.run_dir(name + "-prior")
        for bundle in (self.bundle(name), self.bundle(name + "-crave")):
            if bundle.exists():
                shutil.rmtree(bundle)
        gate = ["--gate", GATE_MODE[name]] if name in GATE_MODE else []
        gate += ["--lead", str(LEAD[name])] if name in LEAD else []
        self._run(name, "export", NEURORAVE + ["export", self.run_dir(name), "--out",
                                               self.bundle(name), "--prior", prior, *gate])
        if self.run_dir(name + "-crave").exists() and "twin" not in self.args.skip:
            self._run(name, "export", NEURORAVE + ["export", self.run_dir(name + "-crave"),
                                                   "--out", self.bundle(name + "-crave")])

    def evaluate(self, name: str) -> None:
        command = NEURORAVE + ["evaluate", self.bundle(name), "--data", self.data(name),
                               "--out", self.work / "eval" / name,
                               "--play-seconds", str(self.args.play_seconds)]
        if self.bundle(name + "-crave").exists():
            command += ["--compare", self.bundle(name + "-crave")]
        if self.args.eval_limit:
            command += ["--limit", str(self.args.eval_limit)]
        self._run(name, "evaluate", command)

    def installed_steps(self, name: str, run_name: str) -> int:
        """The steps the installed bundle's run (or its twin) was trained to; 0 if none."""
        summary = Path(self.args.install_to) / name / "training.json"
        if not summary.exists():
            return 0
        part = "crave" if run_name.endswith("-crave") else "frave"
        entry = json.loads(summary.read_text(encoding="utf-8")).get(part) or {}
        return int(entry.get("steps") or 0)

    def install(self, name: str) -> None:
        source, target = self.bundle(name), Path(self.args.install_to) / name
        further, ours = self.installed_steps(name, name), trained_steps(self.run_dir(name))
        if further > ours and not self.args.force:
            raise SystemExit(f"pretrained: {name}: the installed bundle was trained to "
                             f"{further} steps, this run to {ours}: not replaced "
                             "(--force replaces it)")
        size_mb = sum(p.stat().st_size for p in source.iterdir()) / 1e6
        if size_mb > MAX_BUNDLE_MB:
            raise SystemExit(f"pretrained: {name}: the bundle is {size_mb:.1f} MB, over "
                             f"{MAX_BUNDLE_MB:.0f} MB")
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(source, target)
        shutil.copyfile(self.run_dir(name) / "config.json", target / "config.json")
        metrics = self.work / "eval" / name / "metrics.json"
        # Only an evaluation of this very bundle (an older one describes other weights):
        # its figures name the graphs they were measured on.
        if metrics.exists() and evaluated_graphs(metrics) == bundle_graphs(source):
            shutil.copyfile(metrics, target / "metrics.json")
        else:
            say(f"{name}: no evaluation of this bundle yet; installed without metrics.json")
        summary = self.summary(name)
        (target / "training.json").write_text(json.dumps(summary, indent=1) + "\n",
                                              encoding="utf-8")
        say(f"{name}: installed in {target} ({size_mb:.1f} MB)")

    def summary(self, name: str) -> Dict[str, Any]:
        """Steps, hardware and wall time of every stage, and what the data was."""
        manifest = json.loads((self.data(name) / "manifest.json").read_text(encoding="utf-8"))
        prior_doc = self.run_dir(name + "-prior") / "prior.json"
        prior = json.loads(prior_doc.read_text(encoding="utf-8")) if prior_doc.exists() else {}
        stages = self._stages().get(name, {})

        def run_summary(config: str) -> Optional[Dict[str, Any]]:
            run = self.run_dir(config)
            if not run.exists():
                return None
            history = json.loads((run / "history.json").read_text(encoding="utf-8")) \
                if (run / "history.json").exists() else []
            return {"run": config, "steps": trained_steps(run), "sessions": history,
                    "wall_s": round(sum(float(s.get("wall_s", 0)) for s in history), 1)}

        return {
            "format": "neurorave-training-summary", "name": name,
            "recipe": "make pretrained (tools/pretrained.py)",
            "dataset": {"source": name, "command": manifest.get("command"),
                        "counts": manifest.get("counts"),
                        "duration_s": manifest.get("duration_s")},
            "frave": run_summary(name), "crave": run_summary(name + "-crave"),
            "prior": {"steps": prior.get("metrics", {}).get("step"),
                      "valid_nll": prior.get("metrics", {}).get("valid_nll"),
                      "baseline_nll": prior.get("metrics", {}).get("baseline_nll"),
                      "config": prior.get("config"), "stages": stages.get("prior", [])},
            "stages": stages,
        }

    def go(self) -> None:
        if self.args.carry:
            for name in self.args.models:
                for run_name in (name, name + "-crave"):
                    self.carry(run_name)
                self.carry_prior(name)
            return
        for name in self.args.models:
            wanted = [s for s in STAGES if s not in self.args.skip]
            if "data" in wanted:
                self.build_data(name)
            if "train" in wanted:
                self.train(name, name, self.config(name), "train")
            if "twin" in wanted:
                self.train(name, name + "-crave", self.config(name) + "-crave", "twin")
            if "prior" in wanted:
                self.prior(name)
            if "export" in wanted:
                self.export(name)
            if "evaluate" in wanted:
                self.evaluate(name)
            if "install" in wanted:
                self.install(name)


def shown_path(path: Path) -> str:
    return str(path).replace(f"{ROOT}{os.sep}", "")


def shown(command: List[Any]) -> str:
    """The neurorave command line, with paths inside the checkout made relative."""
    return "neurorave " + " ".join(str(c).replace(f"{ROOT}{os.sep}", "") for c in command[3:])


def bundle_graphs(bundle: Path) -> Dict[str, str]:
    meta = json.loads((bundle / "model.json").read_text(encoding="utf-8"))
    return {role: graph["sha256"].lower() for role, graph in meta["graphs"].items()}


def evaluated_graphs(metrics: Path) -> Optional[Dict[str, str]]:
    models = json.loads(metrics.read_text(encoding="utf-8")).get("models") or [{}]
    return models[0].get("graphs")


def trained_steps(run: Path) -> int:
    """The newest saved step of a training run (0 for none); a carried run has no
    weights files, only its history."""
    steps = [int(p.stem.split("-")[1]) for p in (run / "weights").glob("step-*.pt")]
    history = run / "history.json"
    if history.exists():
        sessions = json.loads(history.read_text(encoding="utf-8"))
        steps += [int(s.get("last_step", 0)) for s in sessions]
    return max(steps, default=0)


def weights_from_checkpoint(run: Path) -> None:
    """weights/last.pt (and step-N.pt) of a carried run, from its checkpoint: what the
    prior, export and evaluation read, so that they need not wait for the run's next
    save (a checkpoint's state_dict is the module's, as training writes its weights)."""
    import torch

    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu",
                            weights_only=False)
    step = int(checkpoint["neurorave"]["completed_steps"])
    weights = run / "weights"
    weights.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint["state_dict"], weights / f"step-{step:08d}.pt")
    shutil.copyfile(weights / f"step-{step:08d}.pt", weights / "last.pt")


def encoder_step(run: Path) -> int:
    """The step of the run's encoder: the prior (trained on its latents) stays valid while
    the decoder alone trains on (training.encoder_steps, or phase 2)."""
    from neurorave.models.config import load_config

    done = trained_steps(run)
    t = load_config(run / "config.json").training
    frozen = [s for s in (t.encoder_steps, t.adversarial_start) if s > 0]
    return min([done] + frozen)


def prior_steps(prior: Path) -> int:
    doc = prior / "prior.json"
    if not doc.exists():
        return 0
    return int(json.loads(doc.read_text(encoding="utf-8")).get("metrics", {}).get("step", 0))


def prior_config_steps(config: str = "prior") -> int:
    from neurorave.models.prior.train import load_prior_config

    return int(load_prior_config(config)["training"]["steps"])


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=None, choices=list(MODELS),
                   help="default: the models installed in --install-to (else the 16 kHz "
                        "pair)")
    p.add_argument("--work", default=str(ROOT / "build" / "pretrained"),
                   help="datasets, runs, bundles and reports (default build/pretrained)")
    p.add_argument("--steps", type=int, default=None,
                   help="train F-RAVE and C-RAVE up to this step (default: as far as the "
                        "installed bundle was, else the config's)")
    p.add_argument("--prior-steps", type=int, default=None,
                   help="prior training steps (default: the prior config's)")
    p.add_argument("--devices", type=int, default=None, help="GPUs for DDP")
    p.add_argument("--config", default=None,
                   help="train this configuration (and NAME-crave) instead of the model's own")
    p.add_argument("--data-limit", type=int, default=None, help="dataset items to build")
    p.add_argument("--install-to", default=str(ROOT / "models" / "pretrained"),
                   help="where finished bundles go (default models/pretrained)")
    p.add_argument("--skip", nargs="*", default=[], choices=STAGES, help="stages to leave out")
    p.add_argument("--force", action="store_true",
                   help="install over a bundle trained further than this run")
    p.add_argument("--eval-limit", type=int, default=None, help="test items to evaluate")
    p.add_argument("--carry", action="store_true",
                   help="only copy each run's newest checkpoint into carried-runs/ "
                        "(a run to go on with from a fresh clone)")
    p.add_argument("--carried", default=str(CARRIED),
                   help="where carried runs are kept (default carried-runs/)")
    p.add_argument("--play-seconds", type=float, default=600.0,
                   help="seconds of generation the evaluation checks (default 600)")
    args = p.parse_args(argv)
    if args.models is None:
        installed = [m for m in MODELS if (Path(args.install_to) / m / "model.json").exists()]
        args.models = installed or ["gm-notes", "gm-drums"]
    Recipe(args).go()
    return 0


if __name__ == "__main__":
    sys.exit(main())
