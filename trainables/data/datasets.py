"""Datasets by name: splits, classes, normalization and augmentation constants (SPEC §12).

Every dataset comes as train / val / test splits (:mod:`trainables.data.splits`) plus what the
model and the augmentation need to know about it (per-channel mean/std, crop padding, flip).
The validation split is carved from the training data with a fixed permutation, independent
of the run seed, so every trial of a search is scored on the same held-out examples and
never on the test split. Nothing is read or downloaded until :func:`load_dataset` is called.

``DATASETS`` holds the built-in names; a user's dataset is named by import path,
``dataset: "my_pkg.data:load"``, a callable ``(root: str) -> dict`` with ``train`` and ``test``
(and optionally ``val``) ``torch.utils.data.Dataset``s of ``(image FloatTensor[C, H, W] in
[0, 1], int label)`` and optionally ``num_classes``, ``mean``, ``std``, ``crop_padding``,
``flip``; or registered by an installed package in the entry-point group
``raysearch.datasets``. ``dataset: imagefolder`` reads torchvision's ImageFolder layout
(:mod:`trainables.data.imagefolder`).
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainables._torchvision import import_torchvision
from trainables.data.dataset import DataRequest, Dataset, carve, fixed_permutation
from trainables.data.imagefolder import load_imagefolder
from trainables.data.splits import ItemSplit, Split
from trainables.registry import ConfigError, Registry

MEAN_STD_SAMPLE = 1000  # items a user's dataset's mean/std are estimated from when not given


def _uint8(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 images (N, C, H, W) as a contiguous tensor."""
    return torch.as_tensor(np.ascontiguousarray(images), dtype=torch.uint8)


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


@functools.cache
def _bundled_digits() -> tuple[np.ndarray, np.ndarray]:
    """(images (1797, 64), labels) from the CSV that ships inside scikit-learn, read-only.

    Read directly: importing ``sklearn.datasets`` costs ~1.5 s, paid by every search trial.
    Read once per process: a Tune actor runs trial after trial, and parsing the CSV (14 ms)
    was most of building a tiny trial's run; every caller copies what it takes.
    """
    spec = importlib.util.find_spec("sklearn")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("dataset", "digits", "needs scikit-learn (pip install scikit-learn)")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"
    if not path.is_file():  # a future layout: fall back to the public loader
        from sklearn.datasets import load_digits

        bunch = load_digits()
        return _read_only(bunch.data), _read_only(bunch.target)
    table = np.loadtxt(path, delimiter=",")
    return _read_only(table[:, :-1]), _read_only(table[:, -1].astype(np.int64))


def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def _digits(request: DataRequest) -> Dataset:
    """scikit-learn's bundled 8x8 digits (1797 images, values 0..16, kept as uint8 with scale
    16): 1200 train, 300 val, 297 test."""
    images, labels = _bundled_digits()
    everything = Split(_uint8(images.reshape(-1, 1, 8, 8)), torch.tensor(labels, dtype=torch.int64), scale=16.0)
    perm = fixed_permutation(len(everything))
    test, val, train = (everything.take(i) for i in (perm[:297], perm[297:597], perm[597:]))
    x = train.images()
    return Dataset("digits", train, val, test, 10, (x.mean().item(),), (x.std().item(),), crop_padding=0, flip=False)


def _synthetic(request: DataRequest) -> Dataset:
    """Uniform-noise CIFAR-shaped uint8 images with random labels, for throughput work and tests."""
    size = request.synthetic_size
    if size < 1:
        raise ConfigError("synthetic_size", size, "must be >= 1")
    g = torch.Generator().manual_seed(0)  # independent of the global RNG: same data for every seed
    n = size + 512
    data = Split(torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8),
                 torch.randint(0, 10, (n,), generator=g))
    train, val, test = (data.take(slice(a, b)) for a, b in ((0, size), (size, n - 256), (n - 256, n)))
    return Dataset("synthetic", train, val, test, 10, (0.5,) * 3, (0.2887,) * 3, crop_padding=4, flip=True)


def _mnist(name: str, cls_name: str, mean: float, std: float) -> Callable[[DataRequest], Dataset]:
    def load(request: DataRequest) -> Dataset:
        cls = getattr(import_torchvision().datasets, cls_name)
        train, test = _read(name, request.root, f"{cls_name}/raw",
                            lambda train: cls(request.root, train=train, download=request.download),
                            lambda d: Split(_uint8(d.data.unsqueeze(1)), d.targets.long()))
        return carve(name, train, test, 10, (mean,), (std,), crop_padding=0, flip=False)

    load.__doc__ = f"torchvision {cls_name} (28x28 grayscale, 10 classes) read from ``root``."
    return load


def _cifar(name: str, num_classes: int, folder: str, mean: tuple[float, ...],
           std: tuple[float, ...]) -> Callable[[DataRequest], Dataset]:
    def load(request: DataRequest) -> Dataset:
        tv = import_torchvision().datasets
        cls = tv.CIFAR10 if num_classes == 10 else tv.CIFAR100
        train, test = _read(name, request.root, folder,
                            lambda train: cls(request.root, train=train, download=request.download),
                            lambda d: Split(_uint8(d.data.transpose(0, 3, 1, 2)), torch.tensor(d.targets)))
        return carve(name, train, test, num_classes, mean, std, crop_padding=4, flip=True)

    load.__doc__ = f"torchvision CIFAR-{num_classes} (32x32 RGB) read from ``root``."
    return load


def _svhn(request: DataRequest) -> Dataset:
    """torchvision SVHN (32x32 RGB house numbers; digits are not flip-invariant) read from ``root``."""
    tv = import_torchvision().datasets
    train, test = _read("svhn", request.root, "",
                        lambda train: tv.SVHN(request.root, "train" if train else "test", download=request.download),
                        lambda d: Split(_uint8(d.data), torch.from_numpy(d.labels)))
    return carve("svhn", train, test, 10, (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970),
                 crop_padding=2, flip=False)


def _imagefolder(request: DataRequest) -> Dataset:
    return load_imagefolder(request.root, request.image_size)


# ----------------------------------------------------------------------------- plug-ins


def _labels(items: Any) -> list[int]:
    """Every label of a torch Dataset: its ``targets`` when it has them (torchvision's
    convention), else read item by item."""
    targets = getattr(items, "targets", None)
    if targets is not None and len(targets) == len(items):
        return [int(t) for t in targets]
    return [int(items[i][1]) for i in range(len(items))]


def _item_split(key: str, path: str, items: Any) -> ItemSplit:
    if items is None or not hasattr(items, "__getitem__") or not hasattr(items, "__len__") or len(items) == 0:
        raise ConfigError("dataset", path, f"its {key!r} must be a non-empty torch Dataset of (image, label)")
    image, _ = items[0]
    image = torch.as_tensor(image)
    if image.dim() != 3 or not image.is_floating_point():
        raise ConfigError("dataset", path, f"{key} images must be float tensors (C, H, W) in [0, 1]; "
                                           f"got {tuple(image.shape)} {image.dtype}")
    c, h, w = image.shape
    return ItemSplit(items, _labels(items), (int(c), int(h), int(w)), scale=1.0)


def _mean_std(split: ItemSplit) -> tuple[tuple[float, ...], tuple[float, ...]]:
    x = split.materialize(MEAN_STD_SAMPLE).images()
    return tuple(x.mean((0, 2, 3)).tolist()), tuple(x.std((0, 2, 3)).clamp_min(1e-3).tolist())


def plugin_dataset(path: str, load: Callable[[str], Mapping[str, Any]]) -> Callable[[DataRequest], Dataset]:
    """Wrap a user's ``(root) -> dict`` loader (see the module docstring) as a registry entry."""
    if not callable(load):
        raise ConfigError("dataset", path, "must name a callable (root: str) -> dict with train and test")

    def loader(request: DataRequest) -> Dataset:
        try:
            parts = load(request.root)
        except ConfigError:
            raise
        except Exception as err:
            raise ConfigError("dataset", path, f"loading failed: {type(err).__name__}: {err}") from None
        if not isinstance(parts, Mapping) or "train" not in parts or "test" not in parts:
            raise ConfigError("dataset", path, "must return a dict with 'train' and 'test' datasets "
                                               "(and optionally 'val', 'num_classes', 'mean', 'std')")
        train, test = _item_split("train", path, parts["train"]), _item_split("test", path, parts["test"])
        num_classes = int(parts.get("num_classes") or int(torch.cat([train.y, test.y]).max()) + 1)
        mean, std = (tuple(parts["mean"]), tuple(parts["std"])) if "mean" in parts and "std" in parts \
            else _mean_std(train)
        padding, flip = int(parts.get("crop_padding", 0)), bool(parts.get("flip", False))
        if parts.get("val") is not None:
            return Dataset(path, train, _item_split("val", path, parts["val"]), test, num_classes, mean, std,
                           padding, flip)
        return carve(path, train, test, num_classes, mean, std, padding, flip)

    return loader


DATASETS: Registry[Callable[[DataRequest], Dataset]] = Registry("dataset", {
    "digits": _digits,
    "mnist": _mnist("mnist", "MNIST", 0.1307, 0.3081),
    "fashion_mnist": _mnist("fashion_mnist", "FashionMNIST", 0.2860, 0.3530),
    "cifar10": _cifar("cifar10", 10, "cifar-10-batches-py", (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)),
    "cifar100": _cifar("cifar100", 100, "cifar-100-python", (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "svhn": _svhn,
    "imagefolder": _imagefolder,
    "synthetic": _synthetic,
}, imports=True, wrap_import=plugin_dataset)


def load_dataset(name: str | Callable[[str], Mapping[str, Any]], root: str = "data", download: bool = False,
                 synthetic_size: int = 2048, image_size: int = 0) -> Dataset:
    """Load a dataset by its contract name, import path or loader callable (as CPU splits)."""
    request = DataRequest(root, download, synthetic_size, image_size)
    if callable(name):
        return plugin_dataset(getattr(name, "__qualname__", "dataset"), name)(request)
    return DATASETS.get(name)(request)


def load_config_dataset(cfg: Any) -> Dataset:
    """The dataset a :class:`~trainables.config.TrainConfig` names."""
    return load_dataset(cfg.dataset, cfg.data_root, cfg.download, cfg.synthetic_size, cfg.image_size)
