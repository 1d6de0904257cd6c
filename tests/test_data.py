"""Tests for trainables.data: datasets (digits, synthetic, torchvision formats), Augment, BatchLoader."""

from __future__ import annotations

import os
import pickle
import struct
from collections import Counter
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trainables._torchvision import import_torchvision
from trainables.data import (
    DATASETS,
    Augment,
    AugParams,
    BatchLoader,
    Split,
    StreamingLoader,
    keep_on_device,
    load_dataset,
    make_loader,
    materialize,
    train_subset,
)
from trainables.data.datasets import _read
from trainables.registry import ConfigError

# --- digits and synthetic ---------------------------------------------------------------


def _rows(x: torch.Tensor) -> Counter:
    return Counter(bytes(row.numpy().tobytes()) for row in x.flatten(1))


def test_digits_splits_partition_the_data(digits) -> None:
    from sklearn.datasets import load_digits

    assert (len(digits.train), len(digits.val), len(digits.test)) == (1200, 300, 297)
    assert digits.input_shape == (1, 8, 8) and digits.num_classes == 10
    assert (digits.crop_padding, digits.flip) == (0, False)
    everything = torch.tensor(load_digits().images, dtype=torch.float32).unsqueeze(1) / 16
    parts = torch.cat([digits.train.images(), digits.val.images(), digits.test.images()])
    assert _rows(parts) == _rows(everything)  # disjoint and complete, as a multiset of images
    for split in (digits.train, digits.val, digits.test):
        # held as uint8 values 0..16 (a quarter of float32's bytes), read as value / 16
        assert split.x.dtype == torch.uint8 and split.scale == 16 and split.y.dtype == torch.int64
        assert split.images().dtype == torch.float32
        assert split.images().min() == 0 and split.images().max() == 1
        assert set(split.y.tolist()) == set(range(10))


def test_digits_split_is_fixed_whatever_the_seed(digits) -> None:
    torch.manual_seed(123)
    np.random.seed(123)
    again = load_dataset("digits")
    for a, b in ((digits.train, again.train), (digits.val, again.val), (digits.test, again.test)):
        assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)


def test_digits_are_parsed_once_per_process_and_each_load_is_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    from trainables.data import datasets

    datasets._bundled_digits.cache_clear()
    parsed = []
    loadtxt = np.loadtxt
    monkeypatch.setattr(np, "loadtxt", lambda *a, **k: parsed.append(1) or loadtxt(*a, **k))
    first = load_dataset("digits")
    first.train.x[0].fill_(255)  # a trial that changes its copy
    second = load_dataset("digits")
    assert len(parsed) == 1  # the CSV read once: a Tune actor's later trials take it from memory
    assert not torch.equal(first.train.x[0], second.train.x[0]) and second.train.x.max().item() == 16
    with pytest.raises(ValueError):  # the table every load copies from cannot be changed
        datasets._bundled_digits()[0][0, 0] = 1


def test_digits_mean_std_come_from_the_training_split(digits) -> None:
    assert digits.mean == pytest.approx((digits.train.images().mean().item(),))
    assert digits.std == pytest.approx((digits.train.images().std().item(),))
    assert digits.mean[0] == pytest.approx(0.305, abs=0.01)


def test_synthetic_is_deterministic_and_sized() -> None:
    torch.manual_seed(1)
    a = load_dataset("synthetic", synthetic_size=64)
    torch.manual_seed(2)
    b = load_dataset("synthetic", synthetic_size=64)
    assert (len(a.train), len(a.val), len(a.test)) == (64, 256, 256)
    assert a.input_shape == (3, 32, 32) and a.num_classes == 10 and (a.crop_padding, a.flip) == (4, True)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)
    images = a.train.images()
    assert 0 <= images.min() and images.max() <= 1 and a.train.y.max() < 10


def test_unknown_dataset_suggests_the_closest_name() -> None:
    with pytest.raises(ConfigError, match="did you mean 'cifar10'"):
        load_dataset("cifar_10")
    assert set(DATASETS) == {"digits", "mnist", "fashion_mnist", "cifar10", "cifar100", "svhn", "imagefolder",
                             "synthetic"}


def test_split_to_and_len() -> None:
    split = Split(torch.zeros(5, 1, 2, 2), torch.arange(5))
    moved = split.to("cpu")
    assert len(moved) == 5 and torch.equal(moved.y, split.y)


# --- torchvision formats, written as the real files with fake contents -------------------


@pytest.fixture
def no_md5(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake files cannot match torchvision's md5 sums: check only that the files exist."""
    tv = import_torchvision()
    for module in (tv.datasets.cifar, tv.datasets.svhn):
        monkeypatch.setattr(module, "check_integrity", lambda path, md5=None: os.path.isfile(path))


def _images(n: int, start: int, shape: tuple[int, ...]) -> np.ndarray:
    """n uint8 images, image i filled with the value start + i, so it can be recognized."""
    return np.broadcast_to((start + np.arange(n, dtype=np.uint8)).reshape(n, *[1] * len(shape)),
                           (n, *shape)).copy()


def _pickle(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj))


def _write_cifar(root: Path, num_classes: int) -> None:
    """cifar-10-batches-py / cifar-100-python pickles with rows of 3072 bytes (R, G, B planes).

    The originals are Python 2 pickles whose keys torchvision's ``encoding="latin1"`` load
    turns into ``str``; a Python 3 pickle with ``str`` keys loads the same.
    """
    if num_classes == 10:
        folder, label, meta = root / "cifar-10-batches-py", "labels", ("batches.meta", "label_names")
        train = [(f"data_batch_{i + 1}", 4 * i, 4) for i in range(5)]
    else:
        folder, label, meta = root / "cifar-100-python", "fine_labels", ("meta", "fine_label_names")
        train = [("train", 0, 20)]
    for name, start, n in [*train, ("test_batch" if num_classes == 10 else "test", 100, 5)]:
        data = _images(n, start, (3, 32, 32)).reshape(n, 3072)
        _pickle(folder / name, {"data": data, label: [(start + i) % num_classes for i in range(n)]})
    _pickle(folder / meta[0], {meta[1]: [f"class{i}" for i in range(num_classes)]})


def _write_idx(path: Path, array: np.ndarray) -> None:
    """The big-endian idx format of MNIST: magic 0x08 (ubyte) << 8 | ndim, then the dimensions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack(f">I{array.ndim}I", 0x0800 | array.ndim, *array.shape) + array.tobytes())


def _write_mnist(root: Path, cls_name: str) -> None:
    raw = root / cls_name / "raw"
    for prefix, start, n in (("train", 0, 20), ("t10k", 100, 5)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", _images(n, start, (28, 28)))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", (start + np.arange(n, dtype=np.uint8)) % 10)


def _write_svhn(root: Path) -> None:
    """train_32x32.mat / test_32x32.mat: X is (32, 32, 3, N), y is (N, 1) with 10 meaning digit 0."""
    scipy_io = pytest.importorskip("scipy.io")
    for split, start, n in (("train", 0, 20), ("test", 100, 5)):
        x = _images(n, start, (32, 32, 3)).transpose(1, 2, 3, 0)
        y = ((start + np.arange(n)) % 10).reshape(n, 1).astype(np.uint8)
        y[y == 0] = 10
        scipy_io.savemat(root / f"{split}_32x32.mat", {"X": x, "y": y})


@pytest.mark.parametrize("name, write, classes, shape", [
    ("cifar10", lambda root: _write_cifar(root, 10), 10, (3, 32, 32)),
    ("cifar100", lambda root: _write_cifar(root, 100), 100, (3, 32, 32)),
    ("mnist", lambda root: _write_mnist(root, "MNIST"), 10, (1, 28, 28)),
    ("fashion_mnist", lambda root: _write_mnist(root, "FashionMNIST"), 10, (1, 28, 28)),
    ("svhn", _write_svhn, 10, (3, 32, 32)),
])
def test_torchvision_dataset_reads_the_real_format(no_md5, tmp_path: Path, name, write, classes, shape) -> None:
    write(tmp_path)
    ds = load_dataset(name, root=str(tmp_path))
    assert ds.input_shape == shape and ds.num_classes == classes and len(ds.mean) == shape[0]
    assert (len(ds.train), len(ds.val), len(ds.test)) == (18, 2, 5)  # a tenth of 20 held out
    # image i is filled with i/255 and labelled i % classes (SVHN's "10" is digit 0)
    ids = torch.cat([ds.train.images(), ds.val.images()])[:, 0, 0, 0] * 255
    assert sorted(ids.round().long().tolist()) == list(range(20))
    for split in (ds.train, ds.val, ds.test):
        assert split.x.dtype == torch.uint8 and split.x.is_contiguous()  # uint8 pixels, as stored
        assert torch.all(split.x == split.x[:, :1, :1, :1])  # every pixel and channel of an image
        assert torch.equal(split.y, split.x[:, 0, 0, 0].long() % classes)
    assert torch.equal(ds.test.images()[:, 0, 0, 0], torch.arange(100, 105) / 255)


def test_train_val_split_is_fixed(no_md5, tmp_path: Path) -> None:
    _write_cifar(tmp_path, 10)
    a, b = load_dataset("cifar10", root=str(tmp_path)), load_dataset("cifar10", root=str(tmp_path))
    assert torch.equal(a.val.x, b.val.x) and torch.equal(a.train.y, b.train.y)


@pytest.mark.parametrize("name, where", [
    ("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python"), ("mnist", "MNIST/raw"),
    ("fashion_mnist", "FashionMNIST/raw"), ("svhn", ""),
])
def test_missing_files_give_one_clear_line(tmp_path: Path, name: str, where: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_dataset(name, root=str(tmp_path))
    message = str(info.value)
    assert message.startswith(f"data_root={str(tmp_path)!r}: {name} not found there")
    assert "download: true" in message and f"files in {os.path.join(str(tmp_path), where)}" in message
    assert "\n" not in message


def test_failed_download_gives_one_line_too() -> None:
    def offline(train: bool) -> None:
        raise URLError("[Errno -3] Temporary failure in name resolution")

    with pytest.raises(ConfigError, match=r"^data_root='data': could not load cifar10 there \(<urlopen error"):
        _read("cifar10", "data", "cifar-10-batches-py", offline, lambda d: d)


# --- Augment ------------------------------------------------------------------------------


def _params(dy: list[int], dx: list[int], flip: list[bool]) -> AugParams:
    return AugParams(torch.tensor(dy), torch.tensor(dx), torch.tensor(flip))


def _reference(x: torch.Tensor, pad: int, p: AugParams) -> torch.Tensor:
    """One image at a time: pad, slice, flip."""
    h, w = x.shape[-2:]
    out = []
    for i, img in enumerate(F.pad(x, (pad,) * 4)):
        crop = img[:, p.dy[i] : p.dy[i] + h, p.dx[i] : p.dx[i] + w]
        out.append(crop.flip(-1) if p.flip[i] else crop)
    return torch.stack(out)


def test_apply_moves_a_known_pixel() -> None:
    x = torch.zeros(3, 1, 4, 4)
    x[:, 0, 1, 2] = 1.0  # one bright pixel at row 1, column 2
    aug = Augment(crop_padding=2, flip=True)
    # offset (2, 2) is the identity; (0, 1) shifts down by 2 and right by 1; flip mirrors columns
    out = aug.apply(x, _params([2, 0, 2], [2, 1, 2], [False, False, True]))
    assert out[0, 0].nonzero().tolist() == [[1, 2]]
    assert out[1, 0].nonzero().tolist() == [[3, 3]] and out[1, :, :2].sum() == 0
    assert out[2, 0].nonzero().tolist() == [[1, 1]]
    # offset (4, 0): shifted up by 2 and right by 2, the pixel leaves the crop
    assert aug.apply(x[:1], _params([4], [0], [False])).sum() == 0


def test_apply_matches_the_per_image_reference() -> None:
    torch.manual_seed(0)
    aug = Augment(crop_padding=3, flip=True)
    x = torch.rand(64, 3, 7, 9)
    p = aug.sample(64, "cpu")
    assert p.dy.min() >= 0 and p.dy.max() <= 6 and p.dx.max() <= 6 and 0 < p.flip.sum() < 64
    assert torch.equal(aug.apply(x, p), _reference(x, 3, p))


def test_sample_without_flip_never_flips_and_follows_the_seed() -> None:
    aug = Augment(crop_padding=1, flip=False)
    torch.manual_seed(5)
    a = aug.sample(100, "cpu")
    torch.manual_seed(5)
    b = aug.sample(100, "cpu")
    assert not a.flip.any() and torch.equal(a.dy, b.dy) and torch.equal(a.dx, b.dx)
    assert set(a.dy.tolist()) == {0, 1, 2}


def test_store_is_the_inverse_of_apply() -> None:
    torch.manual_seed(0)
    aug = Augment(crop_padding=4, flip=True)
    memory, values = torch.rand(32, 3, 8, 8), torch.rand(32, 3, 8, 8)
    p = aug.sample(32, "cpu")
    shows_image = aug.apply(torch.ones_like(memory), p)  # 0 where the crop shows padding
    stored = aug.store(memory, values, p)
    assert torch.equal(aug.apply(stored, p), values * shows_image)
    assert torch.equal(aug.apply(aug.store(memory, values * shows_image, p), p), values * shows_image)
    seen = aug.store(torch.zeros_like(memory), torch.ones_like(values), p).bool()
    assert torch.equal(stored[~seen], memory[~seen])  # pixels the crop did not see keep the memory
    assert 0 < (~seen).sum() and seen.sum() == shows_image.sum()


def test_negative_padding_is_rejected() -> None:
    with pytest.raises(ConfigError, match="crop_padding"):
        Augment(crop_padding=-1, flip=False)


# --- BatchLoader ---------------------------------------------------------------------------


def _split(n: int) -> Split:
    return Split(torch.rand(n, 1, 4, 4), torch.arange(n) % 3)


def test_loader_yields_every_index_once_per_epoch() -> None:
    split = _split(10)
    loader = BatchLoader(split, batch_size=3, shuffle=True)
    assert len(loader) == 4
    torch.manual_seed(0)
    epochs = [[b.index for b in loader] for _ in range(2)]
    for batches in epochs:
        assert [len(i) for i in batches] == [3, 3, 3, 1]
        assert sorted(torch.cat(batches).tolist()) == list(range(10))
    assert not torch.equal(torch.cat(epochs[0]), torch.cat(epochs[1]))
    for b in loader:
        assert torch.equal(b.x, split.x[b.index]) and torch.equal(b.y, split.y[b.index]) and b.aug is None


def test_loader_in_order_drop_last_and_max_batches() -> None:
    split = _split(10)
    ordered = BatchLoader(split, batch_size=4, shuffle=False)
    assert [b.index.tolist() for b in ordered] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    dropped = BatchLoader(split, batch_size=4, shuffle=True, drop_last=True)
    assert len(dropped) == 2 and [len(b.index) for b in dropped] == [4, 4]
    capped = BatchLoader(split, batch_size=3, shuffle=True, max_batches=2)
    assert len(capped) == 2 and len(list(capped)) == 2
    assert len(BatchLoader(split, batch_size=3, shuffle=True, max_batches=9)) == 4


def test_loader_augments_on_the_fly() -> None:
    split = _split(8)
    aug = Augment(crop_padding=2, flip=True)
    for b in BatchLoader(split, batch_size=5, shuffle=True, augment=aug):
        assert b.aug is not None and len(b.aug.dy) == len(b.index)
        assert torch.equal(b.x, aug.apply(split.x[b.index], b.aug))
    identity = BatchLoader(split, batch_size=5, shuffle=True, augment=Augment(0, False))
    assert all(b.aug is None for b in identity)


def test_loader_rejects_bad_sizes() -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        BatchLoader(_split(4), batch_size=0, shuffle=False)
    with pytest.raises(ConfigError, match="max_batches"):
        BatchLoader(_split(4), batch_size=2, shuffle=False, max_batches=-1)


# --- ImageFolder, streaming, placement ----------------------------------------------------


def _write_imagefolder(root: Path, splits: dict[str, int], size: int = 12) -> None:
    """PNG files in train/<class>/ (and val/, test/): class c is a flat gray of 40 + 80c."""
    from PIL import Image

    for split, per_class in splits.items():
        for c, name in enumerate(("cat", "dog", "eel")):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                value = 40 + 80 * c
                Image.new("RGB", (size + i % 3, size), (value, value, value)).save(folder / f"{i}.png")


def test_imagefolder_reads_the_png_tree(tmp_path: Path) -> None:
    _write_imagefolder(tmp_path, {"train": 10, "val": 2, "test": 3})
    ds = load_dataset("imagefolder", root=str(tmp_path), image_size=8)
    assert ds.num_classes == 3 and ds.input_shape == (3, 8, 8) and (ds.crop_padding, ds.flip) == (1, True)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (30, 6, 9)  # val/ is validation when test/ exists
    test = materialize(ds.test)
    assert test.x.dtype == torch.uint8 and sorted(set(test.y.tolist())) == [0, 1, 2]
    for image, label in zip(test.x, test.y, strict=True):
        assert torch.all(image == 40 + 80 * int(label))  # resized and cropped, colour kept


def test_imagefolder_without_test_uses_val_as_test_and_carves_validation(tmp_path: Path) -> None:
    _write_imagefolder(tmp_path, {"train": 10, "val": 2})
    ds = load_dataset("imagefolder", root=str(tmp_path), image_size=8)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (27, 3, 6)
    with pytest.raises(ConfigError, match="train/<class>/<image>"):
        load_dataset("imagefolder", root=str(tmp_path / "missing"))


def test_streaming_and_on_device_give_the_same_batches(digits) -> None:
    augment = Augment(crop_padding=1, flip=True)
    on_device = BatchLoader(digits.train, batch_size=100, shuffle=True, augment=augment)
    streamed = StreamingLoader(digits.train, batch_size=100, device="cpu", shuffle=True, augment=augment)
    assert len(on_device) == len(streamed) == 12 and streamed.train_size == on_device.train_size
    torch.manual_seed(5)
    first = list(on_device)
    torch.manual_seed(5)
    second = list(streamed)
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a.index, b.index) and torch.equal(a.y, b.y) and torch.equal(a.x, b.x)


def test_streaming_an_item_split_through_workers_gives_the_same_batches(tmp_path: Path) -> None:
    _write_imagefolder(tmp_path, {"train": 6, "val": 2})
    ds = load_dataset("imagefolder", root=str(tmp_path), image_size=8)
    held = materialize(ds.train)
    torch.manual_seed(1)
    a = list(BatchLoader(held, batch_size=4, shuffle=True))
    torch.manual_seed(1)
    b = list(StreamingLoader(ds.train, batch_size=4, device="cpu", shuffle=True, workers=1))
    assert len(a) == len(b) == 5  # 17 training images (one carved for validation), batches of 4
    assert all(torch.equal(x.x, y.x) and torch.equal(x.index, y.index) for x, y in zip(a, b, strict=True))


def test_auto_placement_streams_above_the_cap(digits, monkeypatch: pytest.MonkeyPatch) -> None:
    from trainables.config import parse_config
    from trainables.data import placement

    assert keep_on_device("auto", 100, 1000) and not keep_on_device("auto", 300, 1000)
    assert keep_on_device("true", 10**12, 1) and not keep_on_device("false", 1, 10**12)
    cfg = parse_config({"data_on_device": "auto"})
    assert isinstance(make_loader(cfg, digits, torch.device("cpu")), BatchLoader)
    monkeypatch.setattr(placement, "memory_capacity", lambda device, share=1.0: digits.train.nbytes)  # 25% of it
    assert isinstance(make_loader(cfg, digits, torch.device("cpu")), StreamingLoader)


def test_data_fraction_is_a_fixed_subset(digits) -> None:
    half = train_subset(digits.train, 0.5)
    assert len(half) == 600 and torch.equal(half.y, train_subset(digits.train, 0.5).y)
    assert train_subset(digits.train, 1.0) is digits.train
