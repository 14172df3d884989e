"""The `neurorave` command line (contract in DESIGN.md).

The parser lives here and stays light: every command's implementation is imported
only when that command runs, so `neurorave run` never pulls in the learning side
(torch) and a missing optional extra only affects the command that needs it.
"""
import argparse
import contextlib
import importlib
import os
import sys
import traceback
from typing import Callable, Dict, List, NoReturn, Optional, Tuple

from neurorave.common.errors import UserError
from neurorave.hardware.errors import HardwareError

__version__ = "0.1.0"

# command name -> (implementation "module:function" or None while not built yet,
#                  the issue that brings it, one-line help, argument builder)
ArgBuilder = Callable[[argparse.ArgumentParser], None]


def _dataset_build(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", required=True,
                   help="gm-notes, gm-drums, speech-digits, or a folder of your audio")
    p.add_argument("--out", required=True, help="dataset folder to write")
    p.add_argument("--sr", type=int, default=None, help="sample rate in Hz")
    p.add_argument("--limit", type=int, default=None, help="build at most N items")


def _describe(p: argparse.ArgumentParser) -> None:
    p.add_argument("audio", help="audio file")
    p.add_argument("--json", action="store_true", help="print the curves as JSON")
    p.add_argument("--plot", default=None, metavar="OUT.png",
                   help="waveform, spectrogram and descriptor curves in one figure")


def _train(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="configuration name or TOML file")
    p.add_argument("--data", required=True, help="dataset folder")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--steps", type=int, default=None, help="training steps")
    p.add_argument("--devices", type=int, default=None, help="number of GPUs (DDP)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--source", default=None, metavar="RUN",
                   help="with --config prior: the F-RAVE run whose latent space it models")
    p.add_argument("--encoder-from", default=None, metavar="RUN",
                   help="a new run on RUN's trained encoder: it starts at "
                        "training.encoder_steps with a new decoder (a decoder change "
                        "keeps the encoder and the prior trained on it)")


def _export(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", nargs="?", default=None, help="training run folder")
    p.add_argument("--out", required=True, help="bundle folder to write")
    p.add_argument("--fidelity", type=float, default=None,
                   help="share of latent variance the exposed PCA dims keep (default 0.95)")
    p.add_argument("--frames-per-call", type=int, default=1, help="latent frames per call")
    p.add_argument("--data", default=None, help="dataset for the latent PCA (default: the run's)")
    p.add_argument("--reference", default=None, metavar="NAME",
                   help="export the reference decoder NAME (rave-v1) instead of a run")
    p.add_argument("--prior", default=None, metavar="PRIOR",
                   help="a prior trained on RUN (neurorave train --config prior) to include")
    p.add_argument("--gate", default=None, choices=("phrase", "hit", "note"),
                   help="with --prior: what gate 1 starts by default, the prior's phrase, "
                        "one hit (a drum voice) or one note (held while the gate is high); "
                        "the player's setting overrides it")
    p.add_argument("--lead", type=int, default=None, metavar="N",
                   help="with --prior: decoder calls a gate's phrase plays unheard before "
                        "the one heard (default 1 at one frame a call)")


def _evaluate(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", help="model bundle folder (ONNX Runtime) or training run (torch)")
    p.add_argument("--data", required=True, help="dataset folder")
    p.add_argument("--out", required=True, help="report folder")
    p.add_argument("--limit", type=int, default=None, help="evaluate at most N items")
    p.add_argument("--compare", default=None, metavar="OTHER",
                   help="a second bundle or run (e.g. the C-RAVE twin), side by side")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                   help="where a run's checkpoint runs (a bundle: ort-cpu or ort-gpu)")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--play-seconds", type=float, default=600.0, metavar="S",
                   help="a bundle: seconds of generation checked for NaN, clipping and "
                        "silence (default 600)")


def _seed(text: str) -> int:
    """A seed is a whole number, 0 or more (NumPy's generators refuse negatives)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value}: must be 0 or more")
    return value


def _render(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", help="model bundle folder")
    p.add_argument("--patch", required=True, help="patch file (TOML)")
    p.add_argument("--seconds", type=float, default=None,
                   help="how long (default: the patch's own `seconds`)")
    p.add_argument("--out", required=True, help="output WAV file")
    p.add_argument("--seed", type=_seed, default=0)


def _stats_file(path: str) -> str:
    """--stats is checked before the daemon starts: it cannot say so later."""
    from neurorave.firmware.stats import check_writable

    try:
        check_writable(path)
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return path


def _run(p: argparse.ArgumentParser) -> None:
    p.add_argument("--board", default=None,
                   help="jetson-nano, sim or a board file (default: jetson-nano on the "
                        "module, sim elsewhere)")
    p.add_argument("--models", default=None, help="folder of model bundles")
    p.add_argument("--audio-device", default=None, help="PortAudio device name")
    p.add_argument("--headless", action="store_true", help="no window (virtual board)")
    p.add_argument("--patch", default=None, help="patch file driving the virtual board")
    p.add_argument("--seconds", type=float, default=None,
                   help="stop after S seconds (default: the patch's own `seconds`, else never)")
    p.add_argument("--stats", default=None, type=_stats_file, metavar="FILE",
                   help="write stats JSON to FILE")
    p.add_argument("--engine", default="auto", choices=["auto", "trt", "ort-gpu", "ort-cpu"])


def _bench(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", help="model bundle folder")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", action="store_true")
    p.add_argument("--engine", default="auto", choices=["auto", "trt", "ort-gpu", "ort-cpu"])
    p.add_argument("--seconds", type=float, default=3.0, help="timed seconds per engine")
    p.add_argument("--reference", default=None, metavar="DIR",
                   help="an existing reference bundle (default "
                        "~/.cache/neurorave/reference/rave-v1, made there on first use)")


def _hwtest(p: argparse.ArgumentParser) -> None:
    p.add_argument("--board", default=None,
                   help="jetson-nano, sim or a board file (default: jetson-nano on the "
                        "module, sim elsewhere)")


def _doctor(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache", default=None, metavar="DIR",
                   help="engine cache folder (default: engines/ in the state directory)")


def _transfer(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="audio file (any rate and channel count)")
    p.add_argument("output", help="output sound file (mono, at the input's rate)")
    p.add_argument("--bundle", required=True, help="model bundle folder with an encoder")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="pin an attribute: a position 0..1 in its range, or a value in its "
                        "unit (f0=220Hz); repeatable")
    p.add_argument("--seed", type=_seed, default=0)


COMMANDS: Dict[str, Tuple[Optional[str], int, str, ArgBuilder]] = {
    "describe": ("neurorave.models.describe_command:main", 3, "descriptor curves of an audio file",
                 _describe),
    "train": ("neurorave.models.training.cli:main", 4, "train an F-RAVE or C-RAVE model",
              _train),
    "export": ("neurorave.models.export.command:main", 5,
               "export a training run as a model bundle", _export),
    "evaluate": ("neurorave.firmware.evaluate_command:main", 9,
                 "measure a bundle: reconstruction, control, report", _evaluate),
    "render": ("neurorave.firmware.render:main", 8, "play a patch offline into a WAV file",
               _render),
    "run": ("neurorave.firmware.daemon:main", 8, "the instrument: run the daemon", _run),
    "bench": ("neurorave.models.runtime.bench:main", 5, "time a bundle's inference engines",
              _bench),
    "hwtest": ("neurorave.hardware.hwtest:main", 7, "bring-up test of the panel hardware", _hwtest),
    "doctor": ("neurorave.firmware.doctor:main", 23,
               "which inference engines this machine can run, and why not", _doctor),
    "transfer": ("neurorave.models.transfer_command:main", 24,
                 "timbre and attribute transfer of a recording through a bundle", _transfer),
}
# `dataset` has sub-commands of its own.
DATASET_COMMANDS: Dict[str, Tuple[Optional[str], int, str, ArgBuilder]] = {
    "build": ("neurorave.models.dataset_build:main", 3, "make a training dataset", _dataset_build),
}


class _Parser(argparse.ArgumentParser):
    """argparse that fails with one line (no usage dump) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="neurorave", description="NeuroRave neural synthesizer")
    parser.add_argument("--version", action="version", version=f"neurorave {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    dataset = sub.add_parser("dataset", help="training datasets")
    dataset_sub = dataset.add_subparsers(dest="dataset_command", metavar="COMMAND",
                                         parser_class=_Parser)
    dataset_sub.required = True
    for table, holder, prefix in ((COMMANDS, sub, ""), (DATASET_COMMANDS, dataset_sub, "dataset ")):
        for name, (target, issue, help_text, add_args) in table.items():
            p = holder.add_parser(name, help=help_text, description=help_text)
            add_args(p)
            p.set_defaults(_target=target, _issue=issue, _name=prefix + name)
    return parser


def _resolve(target: str) -> Callable[[argparse.Namespace], Optional[int]]:
    module_name, func_name = target.split(":")
    module = importlib.import_module(module_name)
    return getattr(module, func_name)


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args._target is None:
        print(f"neurorave {args._name}: not built yet (issue {args._issue})", file=sys.stderr)
        return 2
    try:
        handler = _resolve(args._target)
        status = handler(args)
    except UserError as exc:
        print(f"neurorave {args._name}: {exc}", file=sys.stderr)
        return exc.exit_code
    except HardwareError as exc:   # a part missing at start (the I2C bus, the GPIO chip)
        print(f"neurorave {args._name}: {exc}; `neurorave hwtest` checks each part",
              file=sys.stderr)
        return 1
    except ImportError as exc:
        print(f"neurorave {args._name}: a required package is missing ({exc.name or exc}); "
              "install the extra it belongs to, e.g. pip install 'neurorave[train]'",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"neurorave {args._name}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Its reader went away (`| head`): nothing to say to anyone; quiet, as cat is.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (OSError, UnicodeDecodeError) as exc:
        # Last resort for a file a command did not check (a full disk, a permission, a
        # binary file read as text): still one line. Not `Exception`: bugs stay loud.
        if os.environ.get("NEURORAVE_DEBUG") == "1":
            traceback.print_exc()
        print(f"neurorave {args._name}: {_file_error(exc)}", file=sys.stderr)
        return 1
    return int(status or 0)


def _file_error(exc: BaseException) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return f"a file is not UTF-8 text ({exc.reason} at byte {exc.start})"
    if isinstance(exc, OSError) and exc.strerror:
        where = exc.filename if exc.filename is not None else "a file"
        return f"{where}: {exc.strerror}"
    return str(exc) or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
