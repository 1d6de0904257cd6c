"""Whole datasets as tensors: images (N, C, H, W) float32 in [0, 1], labels (N,) int64.

Every dataset comes as train / val / test :class:`Split` objects plus what the model and the
augmentation need to know about it (per-channel mean/std, crop padding, flip). The validation
split is carved from the training data with a fixed permutation, independent of the run seed,
so every trial of a search is scored on the same held-out examples and never on the test split.
Nothing is read or downloaded until :func:`load_dataset` is called (SPEC §12).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainables._torchvision import import_torchvision
from trainables.registry import ConfigError, Registry

VAL_SIZE = 5000  # validation examples carved from a torchvision training set
_SPLIT_SEED = 0  # fixed: the split must not move with the run seed


@dataclass(frozen=True)
class Split:
    """Images (N, C, H, W) float32 in [0, 1] and their labels (N,) int64, on one device."""

    x: torch.Tensor
    y: torch.Tensor

    def to(self, device: torch.device | str) -> Split:
        """The same split on ``device`` (the whole split is held there, airbench-style)."""
        return Split(self.x.to(device), self.y.to(device))

    def __len__(self) -> int:
        return self.x.shape[0]


@dataclass(frozen=True)
class Dataset:
    """A dataset's three splits and the constants the model and the augmentation need."""

    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_padding: int
    flip: bool

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        c, h, w = self.train.x.shape[1:]
        return c, h, w


def _take(split: Split, index: torch.Tensor | slice) -> Split:
    return Split(split.x[index], split.y[index])


def _carve(name: str, train: Split, test: Split, num_classes: int, mean: tuple[float, ...],
           std: tuple[float, ...], crop_padding: int, flip: bool) -> Dataset:
    """Hold out the last VAL_SIZE examples of a fixed permutation of ``train`` as validation.

    Sets smaller than 10 x VAL_SIZE (only the tiny fixtures of the tests) give a tenth.
    """
    n = len(train)
    n_val = min(VAL_SIZE, n // 10)
    perm = torch.from_numpy(np.random.RandomState(_SPLIT_SEED).permutation(n))
    return Dataset(name, _take(train, perm[: n - n_val]), _take(train, perm[n - n_val :]), test,
                   num_classes, mean, std, crop_padding, flip)


def _to_unit(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 images (N, C, H, W) -> contiguous float32 in [0, 1]."""
    return torch.as_tensor(np.ascontiguousarray(images)).float().div_(255)




def _read(name: str, root: str, folder: str, make: Callable[[bool], Any],
          convert: Callable[[Any], Split]) -> tuple[Split, Split]:
    """(train, test) from the torchvision datasets ``make(train)``, each turned into a Split.

    torchvision's "Dataset not found" becomes one ConfigError line that says how to get the
    files; a failed download (no network) or an unreadable file becomes one line too.
    """
    try:
        train, test = make(True), make(False)
    except (OSError, RuntimeError) as err:
        if "not found" in str(err):
            where = os.path.join(root, folder)
            raise ConfigError("data_root", root, f"{name} not found there", hint=f"set download: true "
                              f"(needs network) or put the torchvision files in {where}") from None
        first_line = str(err).splitlines()[0]
        raise ConfigError("data_root", root, f"could not load {name} there", hint=first_line) from err
    return convert(train), convert(test)


def _bundled_digits() -> tuple[np.ndarray, np.ndarray]:
    """(images (1797, 64), labels) from the CSV that ships inside scikit-learn.

    Read directly: importing ``sklearn.datasets`` costs ~1.5 s, paid by every search trial.
    """
    spec = importlib.util.find_spec("sklearn")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("dataset", "digits", "needs scikit-learn (pip install scikit-learn)")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"
    if not path.is_file():  # a future layout: fall back to the public loader
        from sklearn.datasets import load_digits

        bunch = load_digits()
        return bunch.data, bunch.target
    table = np.loadtxt(path, delimiter=",")
    return table[:, :-1], table[:, -1].astype(np.int64)


def _digits(root: str, download: bool, synthetic_size: int) -> Dataset:
    """scikit-learn's bundled 8x8 digits (1797 images, values 0..16): 1200 train, 300 val, 297 test."""
    images, labels = _bundled_digits()
    x = torch.tensor(images, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16
    everything = Split(x, torch.tensor(labels, dtype=torch.int64))
    perm = torch.from_numpy(np.random.RandomState(_SPLIT_SEED).permutation(len(everything)))
    test, val, train = (_take(everything, i) for i in (perm[:297], perm[297:597], perm[597:]))
    mean, std = train.x.mean().item(), train.x.std().item()
    return Dataset("digits", train, val, test, 10, (mean,), (std,), crop_padding=0, flip=False)


def _synthetic(root: str, download: bool, synthetic_size: int) -> Dataset:
    """Uniform-noise CIFAR-shaped images with random labels, for throughput work and tests only."""
    if synthetic_size < 1:
        raise ConfigError("synthetic_size", synthetic_size, "must be >= 1")
    g = torch.Generator().manual_seed(0)  # independent of the global RNG: same data for every seed
    n = synthetic_size + 512
    data = Split(torch.rand(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g))
    train, val, test = (_take(data, slice(a, b)) for a, b in
                        ((0, synthetic_size), (synthetic_size, n - 256), (n - 256, n)))
    return Dataset("synthetic", train, val, test, 10, (0.5,) * 3, (12**-0.5,) * 3,
                   crop_padding=4, flip=True)


def _mnist(name: str, cls_name: str, mean: float, std: float) -> Callable[..., Dataset]:
    def load(root: str, download: bool, synthetic_size: int) -> Dataset:
        cls = getattr(import_torchvision().datasets, cls_name)
        train, test = _read(name, root, f"{cls_name}/raw",
                            lambda train: cls(root, train=train, download=download),
                            lambda d: Split(_to_unit(d.data.unsqueeze(1)), d.targets.long()))
        return _carve(name, train, test, 10, (mean,), (std,), crop_padding=0, flip=False)

    load.__doc__ = f"torchvision {cls_name} (28x28 grayscale, 10 classes) read from ``root``."
    return load


def _cifar(name: str, num_classes: int, folder: str, mean: tuple[float, ...],
           std: tuple[float, ...]) -> Callable[..., Dataset]:
    def load(root: str, download: bool, synthetic_size: int) -> Dataset:
        tv = import_torchvision().datasets
        cls = tv.CIFAR10 if num_classes == 10 else tv.CIFAR100
        train, test = _read(name, root, folder,
                            lambda train: cls(root, train=train, download=download),
                            lambda d: Split(_to_unit(d.data.transpose(0, 3, 1, 2)), torch.tensor(d.targets)))
        return _carve(name, train, test, num_classes, mean, std, crop_padding=4, flip=True)

    load.__doc__ = f"torchvision CIFAR-{num_classes} (32x32 RGB) read from ``root``."
    return load


def _svhn(root: str, download: bool, synthetic_size: int) -> Dataset:
    """torchvision SVHN (32x32 RGB house numbers; digits are not flip-invariant) read from ``root``."""
    tv = import_torchvision().datasets
    train, test = _read("svhn", root, "",
                        lambda train: tv.SVHN(root, "train" if train else "test", download=download),
                        lambda d: Split(_to_unit(d.data), torch.from_numpy(d.labels)))
    return _carve("svhn", train, test, 10, (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970),
                  crop_padding=2, flip=False)


DATASETS: Registry[Callable[..., Dataset]] = Registry("dataset", {
    "digits": _digits,
    "mnist": _mnist("mnist", "MNIST", 0.1307, 0.3081),
    "fashion_mnist": _mnist("fashion_mnist", "FashionMNIST", 0.2860, 0.3530),
    "cifar10": _cifar("cifar10", 10, "cifar-10-batches-py",
                      (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)),
    "cifar100": _cifar("cifar100", 100, "cifar-100-python",
                       (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "svhn": _svhn,
    "synthetic": _synthetic,
})


def load_dataset(name: str, root: str = "data", download: bool = False,
                 synthetic_size: int = 2048) -> Dataset:
    """Load a dataset by its contract name as CPU tensors; move splits with :meth:`Split.to`."""
    return DATASETS.get(name)(root=root, download=download, synthetic_size=synthetic_size)
