"""Minibatches cut from a split that already lives on the training device.

No worker processes and no host synchronization: the epoch's order is one
``torch.randperm`` on the split's device, a batch is one gather, and augmentation is
:class:`~trainables.data.augment.Augment` on the same device. Each batch carries the
positions of its examples in the split so per-example memories (ATTA, ATAS) can be indexed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from trainables.data.augment import Augment, AugParams
from trainables.data.datasets import Split
from trainables.registry import ConfigError


@dataclass(frozen=True)
class Batch:
    """Images, labels and their positions in the split; ``aug`` is None when not augmented."""

    x: torch.Tensor
    y: torch.Tensor
    index: torch.Tensor
    aug: AugParams | None


class BatchLoader:
    """Yields :class:`Batch` objects from a device-resident :class:`Split`, epoch after epoch.

    Shuffling uses the global RNG of the split's device, so a run's seed fixes the order.
    ``max_batches`` (0: all) caps an epoch, for quick runs and benchmarks.
    """

    def __init__(self, split: Split, batch_size: int, shuffle: bool, augment: Augment | None = None,
                 drop_last: bool = False, max_batches: int = 0) -> None:
        if batch_size < 1:
            raise ConfigError("batch_size", batch_size, "must be a positive whole number")
        if max_batches < 0:
            raise ConfigError("max_batches", max_batches, "must be >= 0 (0: the whole split)")
        self.split, self.batch_size, self.shuffle = split, batch_size, shuffle
        self.augment = None if augment is None or augment.is_identity else augment
        self.drop_last, self.max_batches = drop_last, max_batches

    def __len__(self) -> int:
        """Batches per epoch."""
        n = len(self.split)
        batches = n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)
        return min(batches, self.max_batches) if self.max_batches else batches

    def __iter__(self) -> Iterator[Batch]:
        x, y = self.split.x, self.split.y
        order = torch.randperm(len(self.split), device=x.device) if self.shuffle else None
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            stop = min(start + self.batch_size, len(self.split))
            if order is None:  # in order: slices are views, no copy
                index = torch.arange(start, stop, device=x.device)
                xb, yb = x[start:stop], y[start:stop]
            else:
                index = order[start:stop]
                xb, yb = x[index], y[index]
            aug = None
            if self.augment is not None:
                aug = self.augment.sample(stop - start, x.device)
                xb = self.augment.apply(xb, aug)
            yield Batch(xb, yb, index, aug)
