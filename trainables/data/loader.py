"""Minibatches cut from a split that already lives on the training device.

No worker processes and no host synchronization: the epoch's order is one
``torch.randperm`` on the split's device, a batch is one gather (uint8 pixels converted to
float there), and augmentation is :class:`~trainables.data.augment.Augment` on the same
device. Each batch carries the positions of its examples in the split so per-example
memories (ATTA, ATAS) can be indexed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from trainables.data.augment import Augment, AugParams
from trainables.data.splits import Split
from trainables.registry import ConfigError


@dataclass(frozen=True)
class Batch:
    """Images, labels and their positions in the split; ``aug`` is None when not augmented."""

    x: torch.Tensor
    y: torch.Tensor
    index: torch.Tensor
    aug: AugParams | None


def check_sizes(batch_size: int, max_batches: int) -> None:
    if batch_size < 1:
        raise ConfigError("batch_size", batch_size, "must be a positive whole number")
    if max_batches < 0:
        raise ConfigError("max_batches", max_batches, "must be >= 0 (0: the whole split)")


def batches_in(n: int, batch_size: int, drop_last: bool = False, max_batches: int = 0) -> int:
    """Batches per epoch of ``n`` examples."""
    batches = n // batch_size if drop_last else math.ceil(n / batch_size)
    return min(batches, max_batches) if max_batches else batches


class BatchLoader:
    """Yields :class:`Batch` objects from a device-resident :class:`Split`, epoch after epoch.

    Shuffling uses the global RNG of the split's device, so a run's seed fixes the order.
    ``max_batches`` (0: all) caps an epoch, for quick runs and benchmarks.
    """

    def __init__(self, split: Split, batch_size: int, shuffle: bool, augment: Augment | None = None,
                 drop_last: bool = False, max_batches: int = 0) -> None:
        check_sizes(batch_size, max_batches)
        self.split, self.batch_size, self.shuffle = split, batch_size, shuffle
        self.augment = None if augment is None or augment.is_identity else augment
        self.drop_last, self.max_batches = drop_last, max_batches

    @property
    def train_size(self) -> int:
        """Examples a per-example memory must hold."""
        return len(self.split)

    def __len__(self) -> int:
        """Batches per epoch."""
        return batches_in(len(self.split), self.batch_size, self.drop_last, self.max_batches)

    def __iter__(self) -> Iterator[Batch]:
        split = self.split
        device = split.x.device
        order = torch.randperm(len(split), device=device) if self.shuffle else None
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            stop = min(start + self.batch_size, len(split))
            if order is None:  # in order: slices are views, no copy
                index = torch.arange(start, stop, device=device)
                xb, yb = split.images(slice(start, stop)), split.y[start:stop]
            else:
                index = order[start:stop]
                xb, yb = split.images(index), split.y[index]
            aug = None
            if self.augment is not None:
                aug = self.augment.sample(stop - start, device)
                xb = self.augment.apply(xb, aug)
            yield Batch(xb, yb, index, aug)
