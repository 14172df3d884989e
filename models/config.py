"""Model and training configurations: TOML files, loaded and checked into dataclasses.

`load_config("small")` reads `models/configs/small.toml`; a path reads that file (TOML,
or the JSON a run folder holds). A file may start with `extends = "NAME"` to inherit
another configuration and override some keys (the C-RAVE twins do). Every mistake (an
unknown key, a wrong type, an impossible value) is one `UserError` naming the file
and the key.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Tuple, Union, get_args, get_origin, get_type_hints

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]

from neurorave.common.errors import UserError
from neurorave.models.descriptors import ATTRIBUTES

UPSAMPLERS = ("subpixel", "repeat")  # the decoder's (models/nets/causal.py)

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
PAPER_ATTRIBUTES = ["rms", "centroid", "bandwidth", "sharpness", "boominess"]
LATENT_BINS = 16  # the dataset store's quantile bins


@dataclass
class ModelConfig:
    sample_rate: int = 16000
    bands: int = 8
    ratios: List[int] = field(default_factory=lambda: [4, 4, 4, 2])
    capacity: int = 24
    latent_size: int = 16
    attributes: List[str] = field(default_factory=lambda: list(PAPER_ATTRIBUTES))
    noise_bins: int = 5           # magnitudes per band of the filtered-noise branch
    noise_block: int = 4          # band-rate samples per noise filter update
    pqmf_taps_per_band: int = 8
    dilations: List[int] = field(default_factory=lambda: [1, 3, 9])
    harmonics: int = 0            # sines at f0 and its multiples added to the output (needs f0)
    level: bool = False           # each frame's RMS set to the rms input (needs rms): a VCA
    log_rms: bool = False         # rms conditions the decoder in dB, not linearly (needs rms)
    band_dc_block: float = 0.0    # Hz: a DC blocker on the band signals (0: none); see decoder.py
    upsample: str = "subpixel"    # the decoder's upsampler, "subpixel" or "repeat" (causal.py)

    @property
    def hop(self) -> int:
        """Samples per latent frame."""
        out = self.bands
        for r in self.ratios:
            out *= r
        return out


@dataclass
class FaderConfig:
    weight: float = 0.5           # lambda: the encoder loss subtracts lambda * CE
    delay: int = 10000            # steps before lambda starts to ramp up
    ramp: int = 20000             # steps from 0 to `weight`
    hidden: int = 128
    layers: int = 3
    learning_rate: float = 1e-4


@dataclass
class DiscriminatorConfig:
    capacity: int = 16
    layers: int = 4
    scales: int = 3
    periods: List[int] = field(default_factory=lambda: [2, 3, 5, 7, 11])
    learning_rate: float = 1e-4


@dataclass
class TrainingConfig:
    steps: int = 1_000_000
    batch_size: int = 8
    chunk: int = 65536            # samples per training example (a multiple of the hop)
    learning_rate: float = 1e-4
    adversarial_start: int = 500_000  # phase 2: encoder frozen, critics on
    kl_beta: float = 0.1
    kl_delay: int = 0
    kl_ramp: int = 100_000
    stft_scales: List[int] = field(default_factory=lambda: [2048, 1024, 512, 256, 128])
    stft_mels: int = 0            # > 0: the reconstruction loss on mel bands (losses.py)
    feature_matching: float = 10.0
    adversarial_weight: float = 1.0
    control_weight: float = 0.0   # the control loss (models/training/control.py); 0: off
    band_dc_weight: float = 0.0   # waveform heads' offset as a loss (losses.waveform_offset)
    control_start: int = 0        # the step from which the control loss applies
    encoder_steps: int = 0        # > 0: the encoder (and the fader) stop learning at this step;
    #                               0: the encoder learns until adversarial_start
    checkpoint_every: int = 10_000
    log_every: int = 100
    validate_every: int = 5_000
    validation_batches: int = 4
    num_workers: int = 2
    stats_items: int = 512        # train chunks read when stats are recomputed at the model hop
    precision: str = "auto"       # auto: bf16-mixed (or 16-mixed) on GPU, 32-true on CPU
    cpu_threads: int = 0          # torch threads when training on CPU (0: torch's default);
    #                               1 suits tiny models, whose many small ops lose to threading


@dataclass
class Config:
    name: str = "custom"
    variant: str = "frave"        # "frave" (latent discriminator penalises z) or "crave"
    description: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    fader: FaderConfig = field(default_factory=FaderConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


def builtin_names() -> List[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))


def _read(source: Union[str, Path]) -> Tuple[Dict[str, Any], Path]:
    text = str(source)
    path = Path(text)
    if path.suffix not in (".toml", ".json") and not path.is_file():
        builtin = CONFIG_DIR / f"{text}.toml"
        if not builtin.exists():
            what = f"{text}: is a folder" if path.is_dir() else \
                f"no configuration named {text!r}"
            raise UserError(f"{what}; built in: {', '.join(builtin_names())} "
                            "(or give a .toml file)")
        path = builtin
    if path.is_dir():
        raise UserError(f"{path}: is a folder, not a configuration file")
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:  # a configuration is UTF-8 text: this is another file
        raise UserError(f"{path}: not a text file (byte {exc.start} is not UTF-8)") from None
    try:
        data = json.loads(raw) if path.suffix == ".json" else tomllib.loads(raw)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise UserError(f"{path}: not valid {path.suffix[1:].upper() or 'TOML'} ({exc})") from None
    return data, path


def _merge(base: Dict[str, Any], over: Dict[str, Any]) -> Dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _resolve_extends(data: Dict[str, Any], path: Path, seen: Tuple[Path, ...]) -> Dict[str, Any]:
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise UserError(f"{path}: 'extends' must be a configuration name or file")
    parent_source = parent if not parent.endswith((".toml", ".json")) else path.parent / parent
    try:
        parent_data, parent_path = _read(parent_source)
    except UserError as exc:  # name the file that asks for the parent, not only the parent
        raise UserError(f"{path}: 'extends': {exc}") from None
    if parent_path.resolve() in seen:
        raise UserError(f"{path}: 'extends' loops back to {parent_path}")
    parent_data = _resolve_extends(parent_data, parent_path, seen + (parent_path.resolve(),))
    return _merge(parent_data, data)


def _convert(value: Any, kind: Any, where: str) -> Any:
    origin = get_origin(kind)
    if origin in (list, List):
        (item,) = get_args(kind)
        if not isinstance(value, list):
            raise UserError(f"{where} must be a list, got {value!r}")
        return [_convert(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        # TOML allows nan and inf; no setting means either, and nan slips past every bound.
        if not math.isfinite(value):
            raise UserError(f"{where} must be a finite number, got {value!r}")
        return float(value)
    if kind in (int, str, bool) and isinstance(value, kind) and not (
            kind is int and isinstance(value, bool)):
        return value
    name = getattr(kind, "__name__", str(kind))
    raise UserError(f"{where} must be {'an' if name[0] in 'aeiou' else 'a'} {name}, got {value!r}")


def _build(cls: Any, data: Dict[str, Any], path: Path, prefix: str = "") -> Any:
    if not isinstance(data, dict):
        raise UserError(f"{path}: '{prefix.rstrip('.')}' must be a table")
    hints = get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in known:
            raise UserError(f"{path}: unknown key '{prefix}{key}' (known in this table: "
                            f"{', '.join(sorted(known))})")
    kwargs = {}
    for key, value in data.items():
        kind = hints[key]
        if dataclasses.is_dataclass(kind):
            kwargs[key] = _build(kind, value, path, f"{prefix}{key}.")
        else:
            kwargs[key] = _convert(value, kind, f"{path}: '{prefix}{key}'")
    return cls(**kwargs)


def _check(cfg: Config, path: Path) -> None:
    def bad(key: str, why: str) -> UserError:
        return UserError(f"{path}: '{key}' {why}")

    m, t, f, d = cfg.model, cfg.training, cfg.fader, cfg.discriminator
    if cfg.variant not in ("frave", "crave"):
        raise bad("variant", f"must be 'frave' or 'crave', got {cfg.variant!r}")
    if cfg.variant == "crave" and f.weight != 0:
        raise bad("fader.weight", "must be 0 for a C-RAVE model (no latent penalty)")
    if cfg.variant == "frave" and f.weight <= 0:
        raise bad("fader.weight", "must be > 0 for an F-RAVE model (use variant = 'crave')")
    for key, value in (("model.sample_rate", m.sample_rate), ("model.bands", m.bands),
                       ("model.capacity", m.capacity), ("model.latent_size", m.latent_size),
                       ("model.pqmf_taps_per_band", m.pqmf_taps_per_band),
                       ("model.noise_block", m.noise_block), ("training.steps", t.steps),
                       ("training.batch_size", t.batch_size), ("training.chunk", t.chunk),
                       ("training.checkpoint_every", t.checkpoint_every),
                       ("training.log_every", t.log_every),
                       ("training.validate_every", t.validate_every),
                       ("fader.hidden", f.hidden), ("discriminator.capacity", d.capacity)):
        if value < 1:
            raise bad(key, f"must be >= 1, got {value}")
    if m.bands & (m.bands - 1):
        raise bad("model.bands", f"must be a power of two, got {m.bands}")
    if not m.ratios or any(r < 1 for r in m.ratios):
        raise bad("model.ratios", f"must be a non-empty list of factors >= 1, got {m.ratios}")
    if m.noise_bins < 2:
        raise bad("model.noise_bins", f"must be >= 2, got {m.noise_bins}")
    if (m.hop // m.bands) % m.noise_block:
        raise bad("model.noise_block", f"must divide {m.hop // m.bands} "
                  "(band-rate samples per latent frame)")
    unknown = [a for a in m.attributes if a not in ATTRIBUTES]
    if unknown or not m.attributes or len(set(m.attributes)) != len(m.attributes):
        raise bad("model.attributes", f"must be distinct names from {', '.join(ATTRIBUTES)}; "
                  f"got {m.attributes}")
    if m.harmonics < 0 or (m.harmonics and "f0" not in m.attributes):
        raise bad("model.harmonics", "must be 0, or > 0 with f0 among the attributes; "
                  f"got {m.harmonics}")
    if m.level and "rms" not in m.attributes:
        raise bad("model.level", "needs rms among the attributes")
    if m.log_rms and "rms" not in m.attributes:
        raise bad("model.log_rms", "needs rms among the attributes")
    if not 0 <= m.band_dc_block < m.sample_rate / m.bands / 2:
        raise bad("model.band_dc_block", f"must be 0 (none) or a cutoff in Hz below "
                  f"{m.sample_rate / m.bands / 2:g}, got {m.band_dc_block}")
    if m.upsample not in UPSAMPLERS:
        raise bad("model.upsample", f"must be one of {', '.join(UPSAMPLERS)}, "
                  f"got {m.upsample!r}")
    if t.chunk % m.hop:
        raise bad("training.chunk", f"must be a multiple of the hop ({m.hop} samples), "
                  f"got {t.chunk}")
    if any(s < 8 or s & (s - 1) for s in t.stft_scales) or not t.stft_scales:
        raise bad("training.stft_scales", "must be powers of two >= 8")
    if max(t.stft_scales) > t.chunk:
        raise bad("training.stft_scales", f"the largest window exceeds the chunk ({t.chunk})")
    for key, value in (("training.learning_rate", t.learning_rate),
                       ("fader.learning_rate", f.learning_rate),
                       ("discriminator.learning_rate", d.learning_rate)):
        if value < 0:  # torch's optimisers refuse it, but only once training has started
            raise bad(key, f"must be >= 0, got {value}")
    for key, value in (("training.control_weight", t.control_weight),
                       ("training.stft_mels", t.stft_mels),
                       ("training.control_start", t.control_start),
                       ("training.encoder_steps", t.encoder_steps)):
        if value < 0:
            raise bad(key, f"must be >= 0, got {value}")
    if t.control_weight > 0 and all(a == "f0" for a in m.attributes):
        raise bad("training.control_weight", "needs an attribute other than f0 to control")
    if t.cpu_threads < 0:
        raise bad("training.cpu_threads", f"must be >= 0, got {t.cpu_threads}")
    if t.precision not in ("auto", "32-true", "bf16-mixed", "16-mixed"):
        raise bad("training.precision", "must be auto, 32-true, bf16-mixed or 16-mixed")
    if d.scales < 0 or (d.scales == 0 and not d.periods):
        raise bad("discriminator.scales", "and discriminator.periods leave no critic")


def load_config(source: Union[str, Path]) -> Config:
    """A built-in name ("small", "small-crave", ...), a TOML file, or a run's config.json."""
    data, path = _read(source)
    if not data:
        # An empty file would silently train the dataclass defaults for a million steps;
        # it is a mistake (a save that never happened, the wrong file), not a choice.
        raise UserError(f"{path}: the configuration is empty; start it with "
                        f"extends = \"NAME\" (one of {', '.join(builtin_names())}) and set "
                        "what differs")
    data = _resolve_extends(data, path, (path.resolve(),))
    cfg = _build(Config, data, path)
    _check(cfg, path)
    return cfg


def save_config(cfg: Config, path: Path) -> None:
    """The fully resolved configuration as JSON (what a run folder keeps)."""
    Path(path).write_text(json.dumps(cfg.to_dict(), indent=2) + "\n", encoding="utf-8")
