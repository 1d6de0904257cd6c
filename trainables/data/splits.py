"""A split of a dataset: images and labels, held as tensors or read item by item.

:class:`Split` holds a whole split as tensors: images (N, C, H, W) either uint8 (pixel
values, divided by ``scale`` when read: 255, or 16 for the digits' 0..16 values) or float
already in [0, 1]; labels (N,) int64. Built-in datasets keep uint8, a quarter of float32's
bytes on the training device; a batch is converted when it is cut (:meth:`Split.images`).

:class:`ItemSplit` wraps a ``torch.utils.data.Dataset`` of ``(image, label)`` items that is
read on demand (an ImageFolder tree, a user's dataset): the streaming loader reads it in
worker processes, and :meth:`ItemSplit.materialize` turns it into a :class:`Split` when it
fits on the device.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class Split:
    """Images (N, C, H, W), uint8 pixel values or float in [0, 1], and labels (N,) int64."""

    x: torch.Tensor
    y: torch.Tensor
    scale: float = 255.0  # uint8 value that reads as 1.0

    def to(self, device: torch.device | str) -> Split:
        """The same split on ``device`` (the whole split is held there, airbench-style)."""
        return Split(self.x.to(device), self.y.to(device), self.scale)

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def shape(self) -> tuple[int, int, int]:
        c, h, w = self.x.shape[1:]
        return c, h, w

    @property
    def nbytes(self) -> int:
        return self.x.nbytes + self.y.nbytes

    def images(self, index: torch.Tensor | slice | None = None) -> torch.Tensor:
        """Float images in [0, 1] (all, or those at ``index``)."""
        x = self.x if index is None else self.x[index]
        return x if x.is_floating_point() else x.float().div_(self.scale)

    def take(self, index: torch.Tensor | slice) -> Split:
        return Split(self.x[index], self.y[index], self.scale)


class ItemSplit:
    """A split read item by item from a torch ``Dataset`` of ``(image, label)``.

    Images are uint8 (C, H, W) tensors (or float in [0, 1]); ``y`` holds the labels of the
    split's items, known up front (ImageFolder knows them from the folder names);
    ``indices`` are the items' positions in ``items`` (default: all of them, in order).
    """

    def __init__(self, items: Any, y: Sequence[int] | torch.Tensor, shape: tuple[int, int, int],
                 indices: Sequence[int] | torch.Tensor | None = None, scale: float = 255.0) -> None:
        self.items, self.shape, self.scale = items, shape, scale
        self.y = torch.as_tensor(y, dtype=torch.int64)
        self.indices = torch.arange(len(self.y)) if indices is None else torch.as_tensor(indices)

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def nbytes(self) -> int:
        """Bytes as uint8 tensors (what holding it on the device would take)."""
        return len(self) * int(np.prod(self.shape)) + self.y.nbytes

    def item(self, position: int) -> tuple[torch.Tensor, int]:
        image, label = self.items[int(self.indices[position])]
        return torch.as_tensor(image), int(label)

    def take(self, index: torch.Tensor | slice) -> ItemSplit:
        return ItemSplit(self.items, self.y[index], self.shape, self.indices[index], self.scale)

    def materialize(self, limit: int | None = None) -> Split:
        """The first ``limit`` items (all by default) as a tensor :class:`Split`."""
        n = len(self) if limit is None else min(limit, len(self))
        if n == 0:
            return Split(torch.zeros((0, *self.shape), dtype=torch.uint8), torch.zeros(0, dtype=torch.int64))
        x = torch.stack([self.item(i)[0] for i in range(n)])
        return Split(x, self.y[:n].clone(), self.scale)


AnySplit = Split | ItemSplit


def materialize(split: AnySplit, limit: int | None = None) -> Split:
    """``split`` as tensors (its first ``limit`` examples when given)."""
    if isinstance(split, Split):
        return split if limit is None else split.take(slice(0, limit))
    return split.materialize(limit)


__all__ = ["AnySplit", "ItemSplit", "Split", "materialize"]
