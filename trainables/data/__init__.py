"""Data layer: whole datasets as device tensors, batched augmentation, and a loader that yields
``(x, y, index)`` batches (SPEC §12)."""

from __future__ import annotations

from trainables.data.augment import Augment, AugParams
from trainables.data.datasets import DATASETS, Dataset, Split, load_dataset
from trainables.data.loader import Batch, BatchLoader

__all__ = [
    "DATASETS",
    "AugParams",
    "Augment",
    "Batch",
    "BatchLoader",
    "Dataset",
    "Split",
    "load_dataset",
]
