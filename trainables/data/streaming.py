"""Minibatches streamed from host memory or disk, for data larger than the device's share.

The same batches as :class:`~trainables.data.loader.BatchLoader` for the same seed: the
epoch's order is drawn with the same ``torch.randperm`` on the training device's RNG, each
batch's uint8 pixels are gathered on the host (tensor splits: one indexing op into pinned
memory; item splits such as an ImageFolder tree: read and decoded by ``DataLoader`` worker
processes), moved to the device without blocking, converted to float and augmented there
with the same draws. Batches keep the positions of their examples (``Batch.index``), so ATTA
and ATAS memories work; those memories stay on the device (or, with ``atas.store_size``,
downsampled there).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import torch

from trainables.data.augment import Augment
from trainables.data.loader import Batch, batches_in, check_sizes
from trainables.data.splits import AnySplit, ItemSplit, Split


class _Positions:
    """Items of an :class:`ItemSplit` by position, returned with the position (picklable)."""

    def __init__(self, split: ItemSplit) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, position: int) -> tuple[torch.Tensor, int]:
        image, _ = self.split.item(position)
        return image, position


def _collate(items: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    images, positions = zip(*items, strict=True)
    return torch.stack(images), torch.tensor(positions)


def default_workers(split: AnySplit) -> int:
    """Decoding workers: none for tensors already in memory, else up to 4 (leaving a core)."""
    if isinstance(split, Split):
        return 0
    return max(0, min(4, (os.cpu_count() or 1) - 1))


class StreamingLoader:
    """Yields :class:`Batch` objects from a host-side split onto ``device`` (see module doc)."""

    def __init__(self, split: AnySplit, batch_size: int, device: torch.device | str, shuffle: bool = True,
                 augment: Augment | None = None, max_batches: int = 0, workers: int | None = None) -> None:
        check_sizes(batch_size, max_batches)
        self.split, self.batch_size, self.device, self.shuffle = split, batch_size, torch.device(device), shuffle
        self.augment = None if augment is None or augment.is_identity else augment
        self.max_batches = max_batches
        self.workers = default_workers(split) if workers is None else workers
        self.pin = self.device.type == "cuda"
        if isinstance(split, Split) and self.pin:
            self.split = Split(split.x.pin_memory(), split.y, split.scale)
        self.y = split.y.to(self.device)

    @property
    def train_size(self) -> int:
        return len(self.split)

    def __len__(self) -> int:
        return batches_in(len(self.split), self.batch_size, max_batches=self.max_batches)

    def _order(self) -> torch.Tensor:
        n = len(self.split)
        order = torch.randperm(n, device=self.device) if self.shuffle else torch.arange(n, device=self.device)
        return order[: len(self) * self.batch_size]

    def _host_batches(self, order: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(uint8 or float images on the host, positions on the device) per batch."""
        chunks = order.split(self.batch_size)
        if isinstance(self.split, Split):
            for index in chunks:
                x = self.split.x[index.cpu()]
                yield (x.pin_memory() if self.pin else x), index
            return
        from torch.utils.data import DataLoader

        items: Any = _Positions(self.split)
        loader: Any = DataLoader(items, batch_sampler=[c.tolist() for c in chunks],
                                 num_workers=self.workers, pin_memory=self.pin, collate_fn=_collate,
                                 persistent_workers=False)
        for (x, _), index in zip(loader, chunks, strict=True):
            yield x, index

    def __iter__(self) -> Iterator[Batch]:
        scale = self.split.scale
        for x, index in self._host_batches(self._order()):
            x = x.to(self.device, non_blocking=True)
            xb = x if x.is_floating_point() else x.float().div_(scale)
            aug = None
            if self.augment is not None:
                aug = self.augment.sample(len(index), self.device)
                xb = self.augment.apply(xb, aug)
            yield Batch(xb, self.y[index], index, aug)
