"""The on-disk training dataset: memory-mapped chunks, their curves, stats, a manifest.

Layout of a dataset folder DATA/ (format 1):
    manifest.json   sr, chunk (samples), hop of the stored curves, attributes, units,
                    counts and duration per split, skipped files with reasons, the
                    command that built it, the build parameters
    stats.json      per attribute: min, max, mean, std and `bins` (the 17 edges of 16
                    quantile bins; first = min, last = max), on the train split
    train/ valid/ test/
        audio.npy   float32 [N, chunk]
        curves.npy  float32 [N, n_attributes, chunk // hop]
        items.jsonl one JSON object per chunk: {"source": id, ...metadata}

Arrays are plain .npy files opened with `mmap_mode="r"`, so a dataset larger than RAM
streams. They are written by appending rows behind a fixed-size header that is
rewritten with the final row count, which also lets an interrupted build resume.

The split is a function of the source id alone (SHA-1 of the id -> 80 / 10 / 10 %), so
every chunk of one source file (or one note) lands in the same split, and the same id
lands in the same split in every build. For tiny sets where hashing leaves a split empty,
the sources nearest to that split's hash range are moved into it (`assign_splits`), which
is still deterministic for a given set of sources.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from neurorave.common.errors import UserError
from neurorave.models import descriptors

FORMAT = 1
SPLITS: Tuple[str, ...] = ("train", "valid", "test")
SPLIT_EDGES = (0.8, 0.9)  # hash fraction below 0.8 -> train, below 0.9 -> valid, else test
DEFAULT_HOP = 256
N_BINS = 16
# Stats look at no more than this many frames per attribute (evenly strided chunks).
STATS_MAX_FRAMES = 2_000_000
HEADER_BYTES = 128
STATE_FILE = "build-state.json"


# ---------------------------------------------------------------------------------------
# Split assignment

def hash_fraction(source_id: str) -> float:
    digest = hashlib.sha1(source_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def split_of(source_id: str) -> str:
    f = hash_fraction(source_id)
    return SPLITS[0] if f < SPLIT_EDGES[0] else SPLITS[1] if f < SPLIT_EDGES[1] else SPLITS[2]


def assign_splits(source_ids: Iterable[str]) -> Dict[str, str]:
    """Split per distinct source id (see the module docstring).

    Tiny sets: with one source it goes to train, with two train and valid get one each,
    with three or more every split gets at least one (the source whose hash is nearest to
    the empty split's range moves; sets large enough never need it).
    """
    unique = sorted(set(source_ids), key=hash_fraction)
    split = {s: split_of(s) for s in unique}
    required = SPLITS[:min(len(unique), len(SPLITS))]
    targets = {"train": 0.4, "valid": 0.85, "test": 0.95}
    for name in required:
        if name in split.values():
            continue
        counts = Counter(split.values())
        donors = [s for s in unique if counts[split[s]] > 1 or split[s] not in required]
        best = min(donors, key=lambda s: abs(hash_fraction(s) - targets[name]))
        split[best] = name
    return split


# ---------------------------------------------------------------------------------------
# Appendable .npy files

def _npy_header(shape: Sequence[int]) -> bytes:
    text = "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }" % (
        "".join(f"{int(s)}, " for s in shape).rstrip(" ") if len(shape) > 1 else f"{shape[0]},")
    body_len = HEADER_BYTES - 10
    text = text.ljust(body_len - 1) + "\n"
    if len(text) != body_len:
        raise ValueError(f"npy header too long for shape {tuple(shape)}")
    return b"\x93NUMPY\x01\x00" + body_len.to_bytes(2, "little") + text.encode("latin1")


class _RowFile:
    """float32 .npy file that grows by rows; the header holds the row count."""

    def __init__(self, path: Path, row_shape: Tuple[int, ...], rows: int = 0):
        self.path = path
        self.row_shape = tuple(row_shape)
        self.row_bytes = int(np.prod(row_shape)) * 4
        self.rows = rows
        mode = "r+b" if path.exists() else "w+b"
        self.file = open(path, mode)  # noqa: SIM115  (stays open while the build appends)
        self.file.seek(0)
        self.file.write(_npy_header((rows,) + self.row_shape))
        self.file.truncate(HEADER_BYTES + rows * self.row_bytes)
        self.file.seek(0, os.SEEK_END)

    def append(self, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, dtype="<f4").reshape((-1,) + self.row_shape)
        self.file.write(rows.tobytes())
        self.rows += len(rows)

    def sync(self) -> None:
        self.file.seek(0)
        self.file.write(_npy_header((self.rows,) + self.row_shape))
        self.file.seek(0, os.SEEK_END)
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self) -> None:
        self.sync()
        self.file.close()


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------
# Writing

class StoreWriter:
    """Streams chunks into a dataset folder; `finish` writes stats and the manifest.

    `params` identifies the build (source, sr, chunk, hop...). Re-opening a folder whose
    unfinished build has the same params resumes it: rows past the last checkpoint are
    dropped and `done_units` says which work units the builder can skip.
    """

    def __init__(self, out: Path, sr: int, chunk: int, hop: int = DEFAULT_HOP,
                 attributes: Sequence[str] = descriptors.ATTRIBUTES,
                 params: Optional[Mapping[str, Any]] = None):
        descriptors.check_rate(sr, hop)
        if chunk < hop or chunk % hop:
            raise UserError(f"chunk length {chunk} must be a positive multiple of the hop {hop}")
        self.out = Path(out)
        self.sr, self.chunk, self.hop = int(sr), int(chunk), int(hop)
        self.attributes = tuple(attributes)
        self.params = dict(params or {})
        self.params.update(sr=self.sr, chunk=self.chunk, hop=self.hop,
                           attributes=list(self.attributes))
        self.done_units: List[str] = []
        # Files skipped so far (with reasons): kept across a resume.
        self.skipped: List[Dict[str, str]] = []
        state = self._read_state()
        if state is None:
            _clear_store(self.out)
            counts = {s: 0 for s in SPLITS}
        else:
            counts = state["counts"]
            self.done_units = list(state["done_units"])
            self.skipped = list(state.get("skipped", []))
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            for split in SPLITS:
                (self.out / split).mkdir(exist_ok=True)
        except OSError as exc:
            raise UserError(f"{self.out}: cannot create the dataset folder "
                            f"({exc.strerror or exc})") from None
        frames = self.chunk // self.hop
        self.audio: Dict[str, _RowFile] = {}
        self.curves: Dict[str, _RowFile] = {}
        self.items: Dict[str, Any] = {}
        for split in SPLITS:
            folder = self.out / split
            n = int(counts[split])
            self.audio[split] = _RowFile(folder / "audio.npy", (self.chunk,), n)
            self.curves[split] = _RowFile(folder / "curves.npy", (len(self.attributes), frames), n)
            _truncate_lines(folder / "items.jsonl", n)
            self.items[split] = open(  # noqa: SIM115  (stays open while the build appends)
                folder / "items.jsonl", "a", encoding="utf-8")

    def _read_state(self) -> Optional[Dict[str, Any]]:
        state = read_build_state(self.out)
        return state if state and state.get("params") == _jsonable(self.params) else None

    @property
    def counts(self) -> Dict[str, int]:
        return {s: self.audio[s].rows for s in SPLITS}

    def add(self, split: str, audio: np.ndarray, source_id: str,
            meta: Optional[Mapping[str, Any]] = None,
            curves: Optional[np.ndarray] = None) -> None:
        """Append one chunk (float32 [chunk]); curves are computed unless given."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}")
        audio = np.asarray(audio, dtype=np.float32)
        if audio.shape != (self.chunk,):
            raise ValueError(f"chunk must have shape ({self.chunk},), got {audio.shape}")
        if not np.isfinite(audio).all():  # training must never see NaN or inf
            audio = np.nan_to_num(audio, nan=0.0, posinf=0.0, neginf=0.0)
        if curves is None:
            curves = descriptors.stack(
                descriptors.compute(audio, self.sr, self.hop, self.attributes), self.attributes)
        self.audio[split].append(audio)
        self.curves[split].append(curves)
        item = dict(meta or {})
        item["source"] = source_id
        self.items[split].write(json.dumps(item) + "\n")

    def checkpoint(self, unit: str) -> None:
        """Make everything added so far durable and record `unit` as done."""
        for split in SPLITS:
            self.audio[split].sync()
            self.curves[split].sync()
            self.items[split].flush()
            os.fsync(self.items[split].fileno())
        self.done_units.append(unit)
        _write_json(self.out / STATE_FILE, {"params": _jsonable(self.params),
                                            "counts": self.counts,
                                            "done_units": self.done_units,
                                            "skipped": self.skipped})

    def finish(self, command: str = "", skipped: Optional[Sequence[Mapping[str, str]]] = None,
               extra: Optional[Mapping[str, Any]] = None) -> Path:
        skipped = self.skipped if skipped is None else list(skipped)
        for split in SPLITS:
            self.audio[split].close()
            self.curves[split].close()
            self.items[split].close()
        counts = self.counts
        stats = compute_stats(self.out / "train" / "curves.npy", self.attributes)
        _write_json(self.out / "stats.json", stats)
        seconds = {s: counts[s] * self.chunk / self.sr for s in SPLITS}
        manifest = {
            "format": FORMAT,
            "sr": self.sr,
            "chunk": self.chunk,
            "hop": self.hop,
            "attributes": list(self.attributes),
            "units": {a: descriptors.UNITS[a] for a in self.attributes},
            "counts": counts,
            "duration_s": dict(seconds, total=sum(seconds.values())),
            "skipped": list(skipped),
            "skipped_count": len(skipped),
            "command": command,
            "params": _jsonable(self.params),
        }
        manifest.update(extra or {})
        _write_json(self.out / "manifest.json", manifest)
        (self.out / STATE_FILE).unlink(missing_ok=True)
        return self.out


def read_build_state(out: Path) -> Optional[Dict[str, Any]]:
    """The checkpoint of an unfinished build in `out`, or None."""
    path = Path(out) / STATE_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _jsonable(data: Any) -> Any:
    return json.loads(json.dumps(data))


def _truncate_lines(path: Path, n: int) -> None:
    if not path.exists():
        path.write_text("", encoding="utf-8")
        return
    with open(path, encoding="utf-8") as f:
        lines = f.readlines()[:n]
    path.write_text("".join(line for line in lines if line.endswith("\n")), encoding="utf-8")


def _clear_store(out: Path) -> None:
    """Empty a folder that holds a (possibly partial) store; refuse anything else."""
    if not out.exists():
        return
    if not out.is_dir():
        raise UserError(f"{out} exists and is not a folder")
    ours = {"manifest.json", "stats.json", STATE_FILE, *SPLITS}
    foreign = [p.name for p in out.iterdir() if p.name not in ours]
    if foreign:
        raise UserError(f"{out} is not empty and is not a NeuroRave dataset "
                        f"(found {foreign[0]}); choose another --out")
    for p in out.iterdir():
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink()


def compute_stats(curves_path: Path, attributes: Sequence[str]) -> Dict[str, Dict[str, Any]]:
    """min, max, mean, std and 17 quantile-bin edges per attribute over the curves."""
    curves = np.load(curves_path, mmap_mode="r")
    n, _, frames = curves.shape
    stats: Dict[str, Dict[str, Any]] = {}
    if n == 0:
        for a in attributes:
            stats[a] = {"min": 0.0, "max": 0.0, "mean": 0.0, "std": 0.0,
                        "bins": [0.0] * (N_BINS + 1), "frames": 0}
        return stats
    step = max(1, int(np.ceil(n * frames / STATS_MAX_FRAMES)))
    sample = np.asarray(curves[::step], dtype=np.float64)  # [n', A, frames]
    total = np.zeros(len(attributes))
    total_sq = np.zeros(len(attributes))
    lo = np.full(len(attributes), np.inf)
    hi = np.full(len(attributes), -np.inf)
    for start in range(0, n, 4096):  # exact moments and range over every row
        block = np.asarray(curves[start:start + 4096], dtype=np.float64)
        total += block.sum(axis=(0, 2))
        total_sq += (block ** 2).sum(axis=(0, 2))
        lo = np.minimum(lo, block.min(axis=(0, 2)))
        hi = np.maximum(hi, block.max(axis=(0, 2)))
    count = n * frames
    for i, a in enumerate(attributes):
        mean = total[i] / count
        std = float(np.sqrt(max(total_sq[i] / count - mean ** 2, 0.0)))
        edges = np.quantile(sample[:, i].reshape(-1), np.linspace(0.0, 1.0, N_BINS + 1))
        edges[0], edges[-1] = lo[i], hi[i]
        stats[a] = {"min": float(lo[i]), "max": float(hi[i]), "mean": float(mean), "std": std,
                    "bins": [float(e) for e in np.maximum.accumulate(edges)],
                    "frames": int(count)}
    return stats


def write_dataset(out, chunks: np.ndarray, sr: int, source_ids: Sequence[str],
                  hop: int = DEFAULT_HOP, metas: Optional[Sequence[Mapping[str, Any]]] = None,
                  command: str = "write_dataset") -> Path:
    """A complete store at `out` from in-memory chunks [N, T] (replaces an older store)."""
    chunks = np.asarray(chunks, dtype=np.float32)
    if chunks.ndim != 2:
        raise ValueError(f"chunks must be [N, T], got shape {chunks.shape}")
    if len(source_ids) != len(chunks):
        raise ValueError("one source id per chunk is needed")
    if metas is not None and len(metas) != len(chunks):
        raise ValueError("one metadata dict per chunk is needed")
    out = Path(out)
    _clear_store(out)
    split = assign_splits(source_ids)
    writer = StoreWriter(out, sr, chunks.shape[1], hop,
                         params={"source": "arrays", "n": len(chunks)})
    for i, (chunk, source) in enumerate(zip(chunks, source_ids)):
        writer.add(split[source], chunk, source, metas[i] if metas is not None else None)
    return writer.finish(command=command)


# ---------------------------------------------------------------------------------------
# Reading

class Split:
    """One split: memory-mapped `audio` [N, chunk] and `curves` [N, A, frames], `items`."""

    def __init__(self, folder: Path, chunk: int, n_attributes: int, frames: int):
        self.folder = folder
        self.audio = _load(folder / "audio.npy", (chunk,))
        self.curves = _load(folder / "curves.npy", (n_attributes, frames))
        if len(self.audio) != len(self.curves):
            raise UserError(f"{folder}: audio.npy and curves.npy hold different counts "
                            "(an unfinished build?)")
        self._items: Optional[List[Dict[str, Any]]] = None

    def __len__(self) -> int:
        return len(self.audio)

    @property
    def items(self) -> List[Dict[str, Any]]:
        if self._items is None:
            path = self.folder / "items.jsonl"
            try:
                with open(path, encoding="utf-8") as f:
                    self._items = [json.loads(line) for line in f if line.strip()]
            except (OSError, ValueError) as exc:
                raise UserError(f"{path}: cannot read ({exc})") from None
        return self._items


def _load(path: Path, row_shape: Tuple[int, ...]) -> np.ndarray:
    try:
        array = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable array ({exc})") from None
    if array.dtype != np.float32 or array.shape[1:] != row_shape:
        raise UserError(f"{path}: expected float32 rows of shape {row_shape}, "
                        f"found {array.dtype} {array.shape}")
    return array


class Dataset:
    def __init__(self, path: Path, manifest: Dict[str, Any], stats: Dict[str, Any]):
        self.path = path
        self.manifest = manifest
        self.stats = stats
        self.attributes: Tuple[str, ...] = tuple(manifest["attributes"])
        self.sr = int(manifest["sr"])
        self.hop = int(manifest["hop"])
        self.chunk = int(manifest["chunk"])
        self._splits: Dict[str, Split] = {}

    def split(self, name: str) -> Split:
        if name not in SPLITS:
            raise UserError(f"unknown split {name!r}; a dataset has {', '.join(SPLITS)}")
        if name not in self._splits:
            self._splits[name] = Split(self.path / name, self.chunk, len(self.attributes),
                                       self.chunk // self.hop)
        return self._splits[name]

    def __repr__(self) -> str:
        return (f"Dataset({str(self.path)!r}, sr={self.sr}, chunk={self.chunk}, hop={self.hop}, "
                f"counts={self.manifest.get('counts')})")


def open_dataset(path) -> Dataset:
    """Open a dataset folder; a missing, unfinished or damaged one is a UserError."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path}: no such dataset folder (build one with "
                        "`neurorave dataset build`)")
    manifest_path = path / "manifest.json"
    if not manifest_path.exists():
        hint = " (an unfinished build: run the same `dataset build` again to resume)" \
            if (path / STATE_FILE).exists() else ""
        raise UserError(f"{path}: not a NeuroRave dataset, manifest.json is missing{hint}")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        stats = json.loads((path / "stats.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read the manifest or stats ({exc})") from None
    missing = [k for k in ("sr", "chunk", "hop", "attributes", "counts") if k not in manifest]
    if missing or manifest.get("format") != FORMAT:
        raise UserError(f"{manifest_path}: not a format-{FORMAT} manifest "
                        f"(missing {', '.join(missing) or 'format'})")
    for a in manifest["attributes"]:
        if a not in stats:
            raise UserError(f"{path / 'stats.json'}: no statistics for {a!r}")
    return Dataset(path, manifest, stats)
