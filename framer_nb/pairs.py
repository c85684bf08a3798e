"""Where training pairs come from: seeded generators per step, HR sources (the shipped photos or a user's folder)
and (HR, upsampled LR) pairs.

Randomness is derived per step from (seed, step, ...): a resumed run sees exactly the batches, noise and random
layers of an uninterrupted one, whatever the number of loader workers.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import TrainConfig
from .data import TRAIN_PHOTOS, Pyramid, fingerprint, hr_folder, list_images, photos
from .degrade import bicubic_up, degrade


def step_generator(*parts) -> torch.Generator:
    """A generator seeded from a tuple such as (seed, step, 'noise')."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def data_generator(seed: int, step: int, stage: str, rank: int = 0) -> torch.Generator:
    """The generator of one process's batch: each process draws its own; process 0 draws a single run's."""
    return step_generator(seed, step, stage, *((rank,) if rank else ()))


@dataclass
class DataSource:
    """HR images to crop from (the shipped training photos or a user's folder), with a content fingerprint."""

    images: list
    names: list[str]
    description: str
    fingerprint: str

    def __post_init__(self) -> None:
        self._pyramids: dict[tuple, Pyramid] = {}

    def batch(self, n: int, size: int, g: torch.Generator, scale=(1.0, 1.0)) -> tuple[torch.Tensor, list[str]]:
        """n random crops (scale levels in `scale`, flips, rotations) in [0, 1] and the names of their images."""
        key = tuple(scale)
        if key not in self._pyramids:
            self._pyramids[key] = Pyramid.between(self.images, *scale)
        crops, idx = self._pyramids[key].crops(n, size, g, rotate=True)
        return crops, [self.names[i] for i in idx]


@functools.cache
def builtin_source() -> DataSource:
    """The embedded default: the training split of the photos shipped in installed packages, at full size."""
    images = photos("train", scale=1.0)
    return DataSource(images, list(TRAIN_PHOTOS), "builtin:train photos", fingerprint(images, "builtin-train"))


def folder_source(folder: str | Path, crop: int) -> DataSource:
    """A user's HR folder; its fingerprint covers every file's content."""
    files = list_images(folder)
    images = hr_folder(folder, crop)
    return DataSource(images, [f.stem for f in files], f"folder:{Path(folder).resolve()}",
                      fingerprint(images, "folder"))


def sr_pair(hr: torch.Tensor, preset, cfg: TrainConfig, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """HR crops in [0, 1] -> (HR, upsampled LR), both images in [-1, 1]."""
    lr = bicubic_up(degrade(hr, preset, g), cfg.scale) * 2 - 1
    return hr * 2 - 1, lr


def draw_pairs(source: DataSource, preset, cfg: TrainConfig, n: int, g: torch.Generator):
    """n training pairs drawn by `g`: random crops of `source` degraded by `preset` -> (HR, upsampled LR, names)."""
    hr, names = source.batch(n, cfg.image_size, g, cfg.crop_scale)
    return (*sr_pair(hr, preset, cfg, g), names)
