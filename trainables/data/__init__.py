"""Data layer: datasets by name (built-in, ImageFolder, plug-ins), uint8 splits on the training
device or streamed to it, batched augmentation, and loaders that yield ``(x, y, index)``
batches (SPEC §12)."""

from __future__ import annotations

from trainables.data.augment import Augment, AugParams
from trainables.data.datasets import (
    DATASETS,
    DataRequest,
    Dataset,
    load_config_dataset,
    load_dataset,
)
from trainables.data.loader import Batch, BatchLoader
from trainables.data.placement import (
    keep_on_device,
    make_loader,
    memory_capacity,
    train_subset,
    training_augment,
)
from trainables.data.splits import AnySplit, ItemSplit, Split, materialize
from trainables.data.streaming import StreamingLoader

__all__ = [
    "DATASETS", "AnySplit", "AugParams", "Augment", "Batch", "BatchLoader", "DataRequest", "Dataset", "ItemSplit",
    "Split", "StreamingLoader", "keep_on_device", "load_config_dataset", "load_dataset", "make_loader",
    "materialize", "memory_capacity", "train_subset", "training_augment",
]
