"""Training data from a dataset store (`neurorave.models.datastore`).

Training item `step` is the whole batch of that step on this rank: random crops of
`training.chunk` samples (at multiples of the hop, so stored curves line up) drawn by
a generator seeded with (seed, step, rank). A batch is therefore a pure function of the
step, which makes resuming exact and needs no distributed sampler. Validation uses
fixed crops (offset 0) of the first valid chunks.

Attribute curves come from the store when its hop equals the model's hop; otherwise
the training module computes them on the batch with `descriptors_torch.compute_batch`.
"""
from __future__ import annotations

from typing import Dict, Iterator, Optional

import numpy as np
import pytorch_lightning as pl
import torch
from neurorave.common.errors import UserError
from neurorave.models.config import Config
from neurorave.models.datastore import open_dataset
from torch.utils.data import DataLoader, Dataset, Sampler


def check_compatible(dataset, cfg: Config) -> None:
    """One clear error when the dataset cannot train this configuration."""
    m, t = cfg.model, cfg.training
    if dataset.sr != m.sample_rate:
        raise UserError(f"{dataset.path}: audio at {dataset.sr} Hz but configuration "
                        f"{cfg.name!r} wants {m.sample_rate} Hz (rebuild the dataset with "
                        f"--sr {m.sample_rate})")
    if dataset.chunk < t.chunk:
        raise UserError(f"{dataset.path}: chunks of {dataset.chunk} samples are shorter than "
                        f"training.chunk = {t.chunk} of configuration {cfg.name!r}")
    if len(dataset.split("train")) == 0:
        raise UserError(f"{dataset.path}: the train split is empty")


class StepSampler(Sampler):
    """Yields steps start..stop-1 but reports a length of `stop`.

    Lightning restores how many batches of the epoch were already done (`start`) and counts
    on from there; this loader resumes at exactly that step instead of replaying the epoch.
    """

    def __init__(self, start: int, stop: int):
        self.start, self.stop = start, stop

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.stop))

    def __len__(self) -> int:
        return self.stop


class StepBatches(Dataset):
    """Item `step`: the batch of that training step (a dict of audio, step and maybe curves)."""

    def __init__(self, dataset, cfg: Config, seed: int, stop: int, rank: int = 0):
        self.path = dataset.path
        self.split = dataset.split("train")
        self.batch = cfg.training.batch_size
        self.chunk = cfg.training.chunk
        self.hop = cfg.model.hop
        self.seed, self.stop, self.rank = seed, stop, rank
        self.max_offset = (dataset.chunk - self.chunk) // self.hop
        self.curve_index = None
        if dataset.hop == self.hop and all(a in dataset.attributes for a in cfg.model.attributes):
            self.curve_index = [dataset.attributes.index(a) for a in cfg.model.attributes]

    def __len__(self) -> int:
        return self.stop

    def __getitem__(self, step: int) -> Dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, step, self.rank])
        rows = rng.integers(0, len(self.split), size=self.batch)
        offsets = rng.integers(0, self.max_offset + 1, size=self.batch)
        return read_crops(self.split, rows, offsets, self.chunk, self.hop, self.curve_index,
                          step)


def read_crops(split, rows, offsets, chunk: int, hop: int, curve_index, step: int
               ) -> Dict[str, torch.Tensor]:
    audio = np.stack([split.audio[r, o * hop:o * hop + chunk] for r, o in zip(rows, offsets)])
    out = {"audio": torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)),
           "step": torch.tensor(step)}
    if curve_index is not None:
        frames = chunk // hop
        curves = np.stack([split.curves[r][curve_index, o:o + frames]
                           for r, o in zip(rows, offsets)])
        out["curves"] = torch.from_numpy(np.ascontiguousarray(curves, dtype=np.float32))
    return out


class ValidBatches(StepBatches):
    """Fixed batches: the first chunks of the valid split, cropped at offset 0."""

    def __init__(self, dataset, cfg: Config, n_batches: int):
        super().__init__(dataset, cfg, 0, 0)
        self.split = dataset.split("valid")
        self.n = min(n_batches, len(self.split) // self.batch if len(self.split) >= self.batch
                     else int(len(self.split) > 0))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, k: int) -> Dict[str, torch.Tensor]:
        rows = np.arange(k * self.batch, min((k + 1) * self.batch, len(self.split)))
        return read_crops(self.split, rows, np.zeros_like(rows), self.chunk, self.hop,
                          self.curve_index, -1)


class StoreDataModule(pl.LightningDataModule):
    def __init__(self, data_path, cfg: Config, seed: int):
        super().__init__()
        self.dataset = open_dataset(data_path)
        check_compatible(self.dataset, cfg)
        self.cfg = cfg
        self.seed = seed

    def _loader(self, items: Dataset, sampler: Optional[Sampler] = None) -> DataLoader:
        # On CPU the loader's worker processes would compete with training for the same cores.
        workers = self.cfg.training.num_workers if torch.cuda.is_available() else 0
        return DataLoader(items, batch_size=None, sampler=sampler, num_workers=workers,
                          persistent_workers=False, pin_memory=torch.cuda.is_available())

    def train_dataloader(self) -> DataLoader:
        module = self.trainer.lightning_module
        items = StepBatches(self.dataset, self.cfg, self.seed, module.total_steps,
                            self.trainer.global_rank)
        return self._loader(items, StepSampler(module.completed_steps, module.total_steps))

    def val_dataloader(self) -> Optional[DataLoader]:
        return self._loader(ValidBatches(self.dataset, self.cfg,
                                         self.cfg.training.validation_batches))
