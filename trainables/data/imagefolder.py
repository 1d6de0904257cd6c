"""``dataset: imagefolder``: torchvision's ImageFolder layout, the way ImageNet is stored.

``data_root`` holds ``train/<class>/<image>`` and ``val/`` and/or ``test/`` in the same layout
(the class folders of ``train/`` define the classes). ``test/`` is the test split when
present, else ``val/`` (ImageNet's validation set is the test set of all three papers);
the validation split for in-loop evaluation is ``val/`` when ``test/`` exists too, else
carved from ``train/``. Images are decoded with PIL, converted to RGB, resized so the shorter
side is ``image_size`` (default 224) and center-cropped square, and kept as uint8. Training
augmentation is a random crop with ``image_size / 8`` zero padding and a horizontal flip,
batched on the device like CIFAR's, so per-example memories (ATTA, ATAS with
``atas.store_size: 32``, the ImageNet variant of Algorithm 2) follow the same transform.
Normalization uses ImageNet's mean and std.

Small trees are decoded once and held on the device; larger ones stream from disk through
worker processes (``data_on_device``, :mod:`trainables.data.streaming`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from trainables.data.dataset import Dataset, carve
from trainables.data.splits import ItemSplit
from trainables.registry import ConfigError

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
DEFAULT_SIZE = 224


class FolderImages:
    """The images of one ImageFolder split as uint8 (3, size, size) tensors (picklable, so
    DataLoader workers can read it)."""

    def __init__(self, samples: list[tuple[str, int]], size: int) -> None:
        self.samples, self.size = samples, size

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        path, label = self.samples[index]
        with Image.open(path) as image:
            rgb = image.convert("RGB")
        w, h = rgb.size
        scale = self.size / min(w, h)
        resized = rgb.resize((max(self.size, round(w * scale)), max(self.size, round(h * scale))),
                             Image.Resampling.BILINEAR)
        left, top = (resized.width - self.size) // 2, (resized.height - self.size) // 2
        crop = resized.crop((left, top, left + self.size, top + self.size))
        array = np.asarray(crop, dtype=np.uint8).transpose(2, 0, 1)
        return torch.from_numpy(np.ascontiguousarray(array)), label


def _samples(folder: Path, classes: list[str]) -> list[tuple[str, int]]:
    from trainables._torchvision import import_torchvision

    index = {name: i for i, name in enumerate(classes)}
    found = import_torchvision().datasets.folder.make_dataset(
        str(folder), index, extensions=import_torchvision().datasets.folder.IMG_EXTENSIONS, allow_empty=True)
    return [(path, label) for path, label in found]


def _split(folder: Path, classes: list[str], size: int) -> ItemSplit:
    samples = _samples(folder, classes)
    if not samples:
        raise ConfigError("data_root", str(folder.parent), f"{folder.name}/ holds no images in class folders")
    return ItemSplit(FolderImages(samples, size), [label for _, label in samples], (3, size, size))


def load_imagefolder(root: str, image_size: int = 0) -> Dataset:
    base = Path(root).expanduser()
    train_dir = base / "train"
    if not train_dir.is_dir():
        raise ConfigError("data_root", root, "imagefolder needs train/<class>/<image> there",
                          "and val/ and/or test/ in the same layout (torchvision's ImageFolder)")
    classes = sorted(p.name for p in train_dir.iterdir() if p.is_dir())
    if not classes:
        raise ConfigError("data_root", root, "train/ holds no class folders")
    size = image_size or DEFAULT_SIZE
    train = _split(train_dir, classes, size)
    val_dir, test_dir = base / "val", base / "test"
    if not val_dir.is_dir() and not test_dir.is_dir():
        raise ConfigError("data_root", root, "imagefolder needs val/ or test/ beside train/ for the test split")
    test = _split(test_dir if test_dir.is_dir() else val_dir, classes, size)
    padding = max(1, size // 8)
    if test_dir.is_dir() and val_dir.is_dir():
        return Dataset("imagefolder", train, _split(val_dir, classes, size), test, len(classes),
                       IMAGENET_MEAN, IMAGENET_STD, padding, True)
    return carve("imagefolder", train, test, len(classes), IMAGENET_MEAN, IMAGENET_STD, padding, True)


__all__ = ["FolderImages", "load_imagefolder"]
