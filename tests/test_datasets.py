"""Data sets: the embedded digits, IDX files written here (gzip and raw), errors."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import ohmflow as of
import pytest
from ohmflow import datasets

CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C,
         np.float32: 0x0D, np.float64: 0x0E}


def idx_bytes(a: np.ndarray) -> bytes:
    """IDX encoding written independently of the loader: magic, big-endian dims, data."""
    code = CODES[a.dtype.type]
    head = bytes([0, 0, code, a.ndim]) + b"".join(struct.pack(">I", d) for d in a.shape)
    return head + a.astype(a.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, a: np.ndarray, gz: bool) -> Path:
    data = idx_bytes(a)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def write_mnist_dir(d: Path, gz: bool, n_train=12, n_test=5, shape=(4, 3), seed=0) -> dict:
    rng = np.random.default_rng(seed)
    d.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, *shape), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, *shape), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for name, a in arrays.items():
        write_idx(d / (name + (".gz" if gz else "")), a, gz)
    return arrays


def test_digits_split_is_fixed_and_scaled():
    data = datasets.load("digits")
    assert data.name == "digits" and data.n_classes == 10 and data.n_features == 64
    assert len(data.y_train) == 1438 and len(data.y_test) == 359
    for x in (data.X_train, data.X_test):
        assert x.dtype == np.float64 and x.min() >= 0.0 and x.max() <= 1.0
    assert data.X_train.max() == 1.0
    assert set(np.unique(data.y_test)) == set(range(10))
    again = datasets.load("digits")
    assert np.array_equal(again.X_test, data.X_test) and np.array_equal(again.y_train,
                                                                        data.y_train)
    # Every fifth sample, in file order, is a test sample.
    from sklearn.datasets import load_digits

    raw = load_digits()
    assert np.array_equal(data.X_test, raw.data[4::5] / 16.0)
    assert np.array_equal(data.y_test, raw.target[4::5])
    sub = data.subset(100, 20)
    assert len(sub.y_train) == 100 and len(sub.y_test) == 20


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32,
                                   np.float64])
def test_load_idx_roundtrip(tmp_path, gz, dtype):
    rng = np.random.default_rng(1)
    a = (rng.normal(0, 50, (3, 2, 5)) if dtype in (np.float32, np.float64)
         else rng.integers(0, 100, (3, 2, 5))).astype(dtype)
    p = write_idx(tmp_path / "a.idx", a, gz)
    b = datasets.load_idx(p)
    assert b.shape == a.shape and b.dtype == np.dtype(dtype) and np.array_equal(a, b)
    assert b.dtype.isnative


def test_load_idx_one_dimensional(tmp_path):
    a = np.arange(7, dtype=np.uint8)
    assert np.array_equal(datasets.load_idx(write_idx(tmp_path / "l", a, False)), a)


@pytest.mark.parametrize("gz", [False, True])
def test_load_directory_of_idx_files(tmp_path, gz):
    arrays = write_mnist_dir(tmp_path / "data", gz)
    data = datasets.load(str(tmp_path / "data"))
    assert data.X_train.shape == (12, 12) and data.X_test.shape == (5, 12)
    assert data.image_shape == (4, 3)
    assert np.allclose(data.X_train, arrays["train-images-idx3-ubyte"].reshape(12, -1) / 255.0)
    assert np.array_equal(data.y_test, arrays["t10k-labels-idx1-ubyte"])
    assert data.X_train.min() >= 0 and data.X_train.max() <= 1
    # The named loader takes another directory too (Debian's is the default).
    fm = datasets.load("fashion-mnist", directory=tmp_path / "data")
    assert np.array_equal(fm.X_test, data.X_test) and fm.name == "fashion-mnist"


def test_missing_files_name_the_path(tmp_path):
    missing = tmp_path / "nope.idx"
    with pytest.raises(datasets.DatasetNotFoundError) as e:
        datasets.load_idx(missing)
    assert str(missing) in str(e.value)
    assert isinstance(e.value, of.OhmflowError) and isinstance(e.value, FileNotFoundError)
    with pytest.raises(datasets.DatasetNotFoundError, match="not found"):
        datasets.load(str(tmp_path / "no-such-dir"))
    with pytest.raises(datasets.DatasetNotFoundError, match="dataset-fashion-mnist"):
        datasets.load("fashion-mnist", directory=tmp_path / "absent")
    d = tmp_path / "partial"
    write_mnist_dir(d, gz=True)
    (d / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(datasets.DatasetNotFoundError) as e:
        datasets.load(str(d))
    assert "t10k-labels-idx1-ubyte" in str(e.value)


def test_malformed_files_name_the_path(tmp_path):
    good = idx_bytes(np.zeros((2, 3), dtype=np.uint8))
    cases = {
        "magic": b"\x01\x02\x08\x02" + good[4:],
        "type": b"\x00\x00\x07\x02" + good[4:],
        "short": b"\x00\x00",
        "header": good[:7],
        "truncated": good[:-1],
        "extra": good + b"\x00",
        "gzip": gzip.compress(good)[:-6],
    }
    for name, data in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(datasets.DatasetError) as e:
            datasets.load_idx(p)
        assert str(p) in str(e.value), name
        assert isinstance(e.value, ValueError) and isinstance(e.value, of.OhmflowError)
    with pytest.raises(datasets.DatasetError, match="directory"):
        datasets.load_idx(tmp_path)


def test_inconsistent_directory_and_unknown_name(tmp_path):
    d = tmp_path / "bad"
    write_mnist_dir(d, gz=False)
    write_idx(d / "train-labels-idx1-ubyte", np.zeros(3, dtype=np.uint8), False)
    with pytest.raises(datasets.DatasetError, match="train-labels"):
        datasets.load(str(d))
    with pytest.raises(datasets.DatasetError, match="unknown data set"):
        datasets.load("cifar-1000")
