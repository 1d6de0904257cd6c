"""One dataset: its three splits and the constants the model and the augmentation need, and
how a validation split is carved from a training split (fixed, whatever the run seed)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from trainables.data.splits import AnySplit

VAL_SIZE = 5000  # validation examples carved from a training set
_SPLIT_SEED = 0  # fixed: the split must not move with the run seed


@dataclass(frozen=True)
class DataRequest:
    """Where and how to load a dataset: the config keys a loader reads."""

    root: str = "data"
    download: bool = False
    synthetic_size: int = 2048
    image_size: int = 0


@dataclass(frozen=True)
class Dataset:
    """A dataset's three splits and the constants the model and the augmentation need."""

    name: str
    train: AnySplit
    val: AnySplit
    test: AnySplit
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_padding: int
    flip: bool

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return self.train.shape


def fixed_permutation(n: int) -> torch.Tensor:
    """The permutation of ``n`` examples every split and subset is cut from (seed 0)."""
    return torch.from_numpy(np.random.RandomState(_SPLIT_SEED).permutation(n))


def carve(name: str, train: AnySplit, test: AnySplit, num_classes: int, mean: tuple[float, ...],
          std: tuple[float, ...], crop_padding: int, flip: bool) -> Dataset:
    """Hold out the last VAL_SIZE examples of a fixed permutation of ``train`` as validation.

    Sets smaller than 10 x VAL_SIZE (only the tiny fixtures of the tests) give a tenth.
    """
    n = len(train)
    n_val = min(VAL_SIZE, n // 10)
    perm = fixed_permutation(n)
    return Dataset(name, train.take(perm[: n - n_val]), train.take(perm[n - n_val :]), test,
                   num_classes, mean, std, crop_padding, flip)


__all__ = ["VAL_SIZE", "DataRequest", "Dataset", "carve", "fixed_permutation"]
