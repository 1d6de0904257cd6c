"""Where a run's training data lives: on the training device, or streamed to it.

``data_on_device: true`` holds the training split on the device (uint8, a quarter of float32);
``false`` streams it (:mod:`trainables.data.streaming`); ``auto`` holds it when its uint8
bytes fit in :data:`DEVICE_DATA_SHARE` of the memory the run may use (its share of the GPU,
or the host's memory on the CPU), else streams. ``data_fraction`` < 1 trains on a fixed
subset of the training split (the same for every seed: low-fidelity proxies are complete
runs on less data).
"""

from __future__ import annotations

import math
import os
from typing import Protocol

import torch

from trainables.data.augment import Augment
from trainables.data.dataset import Dataset, fixed_permutation
from trainables.data.loader import BatchLoader
from trainables.data.splits import AnySplit, Split, materialize
from trainables.data.streaming import StreamingLoader

DEVICE_DATA_SHARE = 0.25  # at most this share of the run's memory holds training data


class LoaderSettings(Protocol):
    """The config keys the training loader reads (a TrainConfig has them all)."""

    @property
    def batch_size(self) -> int: ...

    @property
    def max_batches(self) -> int: ...

    @property
    def augment(self) -> bool: ...

    @property
    def data_fraction(self) -> float: ...

    @property
    def data_on_device(self) -> str: ...


def memory_capacity(device: torch.device, gpu_share: float = 1.0) -> int:
    """Bytes the run may use on ``device``: its share of the GPU, or the host's memory."""
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device.index or 0).total_memory
        return int(total * (gpu_share if 0 < gpu_share < 1 else 1.0))
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 1024**3


def keep_on_device(setting: str, nbytes: int, capacity: int) -> bool:
    """``data_on_device`` resolved for a split of ``nbytes`` and a device budget of ``capacity``."""
    if setting in ("true", "false"):
        return setting == "true"
    return nbytes <= DEVICE_DATA_SHARE * capacity


def train_subset(split: AnySplit, fraction: float) -> AnySplit:
    """The first ⌈fraction·N⌉ examples of a fixed permutation (independent of the run seed)."""
    if fraction >= 1:
        return split
    n = len(split)
    keep = max(1, math.ceil(fraction * n))
    return split.take(fixed_permutation(n)[:keep].sort().values)


def training_augment(cfg: LoaderSettings, data: Dataset) -> Augment | None:
    wanted = cfg.augment and (data.crop_padding > 0 or data.flip)
    return Augment(data.crop_padding, data.flip) if wanted else None


def make_loader(cfg: LoaderSettings, data: Dataset, device: torch.device,
                gpu_share: float = 1.0) -> BatchLoader | StreamingLoader:
    """The training loader of a run of ``cfg`` on ``device`` (held there or streamed)."""
    split = train_subset(data.train, cfg.data_fraction)
    augment = training_augment(cfg, data)
    if keep_on_device(cfg.data_on_device, split.nbytes, memory_capacity(device, gpu_share)):
        on_device: Split = materialize(split).to(device)
        return BatchLoader(on_device, cfg.batch_size, shuffle=True, augment=augment, max_batches=cfg.max_batches)
    return StreamingLoader(split, cfg.batch_size, device, shuffle=True, augment=augment, max_batches=cfg.max_batches)
