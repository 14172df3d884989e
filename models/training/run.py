"""Reading a training run folder back (layout in `neurorave.models.training`)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, NamedTuple, Optional

import torch
from neurorave.common.errors import UserError
from neurorave.models.config import Config, load_config

CONFIG_FILE = "config.json"
STATS_FILE = "stats.json"
DATASET_FILE = "dataset.json"


class Run(NamedTuple):
    path: Path
    config: Config
    stats: Dict[str, Any]
    module: Any  # FaderRave, in eval mode, weights loaded
    weights: Path


def load_run(path, weights: Optional[str] = None) -> Run:
    """The run's config, stats and module with `weights/last.pt` (or the named weights file)."""
    from neurorave.models.training.module import FaderRave

    path = Path(path)
    for name in (CONFIG_FILE, STATS_FILE):
        if not (path / name).exists():
            raise UserError(f"{path}: not a training run folder ({name} is missing)")
    cfg = load_config(path / CONFIG_FILE)
    stats = json.loads((path / STATS_FILE).read_text(encoding="utf-8"))
    weights_path = path / "weights" / (weights or "last.pt")
    if not weights_path.exists():
        raise UserError(f"{path}: no weights yet ({weights_path.name} is missing; "
                        "a run writes them every training.checkpoint_every steps)")
    try:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        raise UserError(f"{weights_path}: cannot read the weights ({exc})") from None
    module = FaderRave(cfg, stats)
    module.load_state_dict(module.with_critic(state))
    module.eval()
    return Run(path, cfg, stats, module, weights_path)
