"""`neurorave dataset build`: render or read a source into a dataset store.

Work units (see `dataset_sources`) run in at most two worker processes, which render,
read and describe; the main process appends to the store in a fixed order and checkpoints
after every unit. Running the same command again on a finished dataset does nothing; on
an interrupted one it resumes after the last finished unit. The split of every source id
is decided before any rendering (`datastore.assign_splits`).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
from neurorave.common.errors import UserError
from neurorave.models import datastore, descriptors
from neurorave.models.dataset_sources import Unit, UnitResult, chunk_length
from tqdm import tqdm

NAMED_SOURCES = ("gm-notes", "gm-drums", "speech-digits")
DEFAULT_SR = 16000
MAX_WORKERS = 2


def source_units(source: str, sr: int, limit: Optional[int]) -> List[Unit]:
    if source == "gm-notes":
        from neurorave.models.dataset_sources import gm_notes
        return gm_notes.units(sr, limit)
    if source == "gm-drums":
        from neurorave.models.dataset_sources import gm_drums
        return gm_drums.units(sr, limit)
    if source == "speech-digits":
        from neurorave.models.dataset_sources import speech_digits
        return speech_digits.units(sr, limit)
    from neurorave.models.dataset_sources import user_folder
    return user_folder.units(Path(source), sr, limit)


def _run_unit(job: Tuple[Unit, int]) -> Tuple[str, UnitResult, List[np.ndarray]]:
    """Worker: render/read one unit and describe its pieces."""
    unit, hop = job
    result = unit.work(*unit.args)
    sr = unit.args[-1]
    curves = [descriptors.stack(descriptors.compute(p.audio, sr, hop)) for p in result.pieces]
    return unit.key, result, curves


def _command_line(args: argparse.Namespace) -> str:
    parts = ["neurorave", "dataset", "build", "--source", str(args.source), "--out",
             str(args.out)]
    if args.sr is not None:
        parts += ["--sr", str(args.sr)]
    if args.limit is not None:
        parts += ["--limit", str(args.limit)]
    return " ".join(parts)


def build(source: str, out: Path, sr: int = DEFAULT_SR, limit: Optional[int] = None,
          hop: int = datastore.DEFAULT_HOP, workers: int = MAX_WORKERS, command: str = "",
          progress: bool = True) -> Dict[str, Any]:
    """Build (or resume, or confirm) a dataset; returns its manifest."""
    if sr < 8000 or sr > 96000:
        raise UserError(f"--sr {sr}: choose a sample rate between 8000 and 96000 Hz")
    if limit is not None and limit < 1:
        raise UserError(f"--limit {limit}: must be at least 1")
    source_key = source if source in NAMED_SOURCES else str(Path(source).resolve())
    params = {"source": source_key, "sr": sr, "limit": limit, "hop": hop,
              "chunk": chunk_length(sr), "attributes": list(descriptors.ATTRIBUTES)}
    manifest_path = out / "manifest.json"
    if manifest_path.exists():
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:  # ValueError: bad JSON, or not UTF-8 at all
            raise UserError(f"{manifest_path}: unreadable ({exc}); the dataset in {out} is "
                            "damaged: delete it or choose another --out") from None
        params_seen = manifest.get("params") if isinstance(manifest, dict) else None
        if not isinstance(params_seen, dict):
            raise UserError(f"{manifest_path}: not a NeuroRave dataset manifest (no 'params'); "
                            f"delete {out} or choose another --out")
        if params_seen.get("build") == params:
            if progress:
                print(f"{out}: already built by `{manifest.get('command')}`; nothing to do",
                      file=sys.stderr)
            return manifest
        raise UserError(f"{out} already holds a different dataset "
                        f"(built by `{manifest.get('command', '?')}`); choose another --out "
                        "or delete it")
    state = datastore.read_build_state(out)
    if state is not None and state.get("params", {}).get("build") != params:
        raise UserError(f"{out} holds an unfinished build of a different dataset; choose "
                        "another --out or delete it")
    units = source_units(source, sr, limit)
    splits = datastore.assign_splits(s for u in units for s in u.sources)
    writer = datastore.StoreWriter(out, sr, chunk_length(sr), hop,
                                   params={"build": params})
    done = set(writer.done_units)
    pending = [u for u in units if u.key not in done]
    total = sum(u.size for u in units)
    started = time.monotonic()
    bar = tqdm(total=total, initial=total - sum(u.size for u in pending), unit="item",
               desc=f"dataset {Path(source).name if source not in NAMED_SOURCES else source}",
               disable=not progress, file=sys.stderr, dynamic_ncols=True)
    size = {u.key: u.size for u in units}
    jobs = [(u, hop) for u in pending]
    n_workers = max(1, min(workers, MAX_WORKERS, len(jobs), os.cpu_count() or 1))
    try:
        if n_workers > 1:
            with multiprocessing.get_context("fork").Pool(n_workers) as pool:
                for key, result, curves in pool.imap(_run_unit, jobs):
                    _store(writer, splits, result, curves, key)
                    bar.update(size[key])
        else:
            for job in jobs:
                key, result, curves = _run_unit(job)
                _store(writer, splits, result, curves, key)
                bar.update(size[key])
    finally:
        bar.close()
    skipped = writer.skipped
    if sum(writer.counts.values()) == 0:
        reasons = "; ".join(f"{s['file']}: {s['reason']}" for s in skipped[:3])
        raise UserError(f"{source}: nothing usable ({len(skipped)} file(s) skipped: {reasons})")
    extra = {"source": source_key, "build_seconds": round(time.monotonic() - started, 1)}
    if limit is not None:
        extra["limit"] = limit
    writer.finish(command=command, extra=extra)
    return json.loads(manifest_path.read_text(encoding="utf-8"))


def _store(writer: datastore.StoreWriter, splits: Dict[str, str], result: UnitResult,
           curves: List[np.ndarray], key: str) -> None:
    for piece, c in zip(result.pieces, curves):
        writer.add(splits[piece.source], piece.audio, piece.source, piece.meta, curves=c)
    writer.skipped.extend(result.skipped)
    writer.checkpoint(key)


def main(args: argparse.Namespace) -> int:
    out = Path(args.out)
    sr = args.sr if args.sr is not None else DEFAULT_SR
    manifest = build(args.source, out, sr=sr, limit=args.limit, command=_command_line(args))
    counts = manifest["counts"]
    print(f"{out}: {sum(counts.values())} chunks of {manifest['chunk'] / manifest['sr']:.2f} s "
          f"at {manifest['sr']} Hz ({manifest['duration_s']['total'] / 3600:.2f} h; "
          f"train {counts['train']}, valid {counts['valid']}, test {counts['test']}; "
          f"{manifest['skipped_count']} file(s) skipped)")
    return 0
