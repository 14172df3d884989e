"""Writing a bundle, shared by every export (a run, a reference decoder): the decoder's
signal shapes, its noise input, and the folder written aside and moved into place."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from neurorave.common.errors import UserError
from neurorave.models.runtime.bundle import load_bundle

NOISE = {"input": "noise", "distribution": "uniform", "low": -1.0, "high": 1.0}


def decoder_signals(decoder, exposed: int, n_attributes: int, frames: int):
    """The decoder graph's (name, shape) inputs and outputs for `frames` per call."""
    per_call = frames * decoder.hop
    inputs = [("z", (1, exposed, frames)), ("attributes", (1, n_attributes, frames)),
              ("noise", (1, decoder.bands, per_call // decoder.bands))]
    return inputs, [("audio", (1, 1, per_call))]


def write_bundle(out: str, build) -> str:
    """Build into a temporary sibling folder, check it loads, then move it to `out`."""
    target = Path(out)
    if target.exists() and (not target.is_dir() or (any(target.iterdir())
                                                    and not (target / "model.json").exists())):
        raise UserError(f"{target}: exists and is not a bundle folder; choose another --out")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        work = tempfile.mkdtemp(prefix=f".{target.name}.", dir=str(target.parent))
        os.chmod(work, 0o755)  # mkdtemp's 0700 would hide the bundle from the daemon's user
    except OSError as exc:
        raise UserError(f"{target}: cannot create the bundle folder ({exc.strerror})") from None
    try:
        meta = build(work)
        with open(os.path.join(work, "model.json"), "w", encoding="utf-8") as handle:
            json.dump(meta, handle, indent=1)
            handle.write("\n")
        load_bundle(work)  # the reader's own checks, before anything is replaced
        if target.exists():
            shutil.rmtree(target)
        os.replace(work, target)
    finally:
        if os.path.isdir(work):
            shutil.rmtree(work, ignore_errors=True)
    return str(target)
