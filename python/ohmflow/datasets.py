"""Classification data sets for training resistive networks.

``load(name_or_path)`` returns a :class:`Dataset` with fixed train/test splits and
features scaled to [0, 1]:

``"digits"`` (the default)
    scikit-learn's embedded 8x8 handwritten digits (1797 samples, 10 classes,
    64 features; shipped inside scikit-learn, so it works offline). Pixels (0-16)
    are divided by 16. Split: every fifth sample in file order (indices 4, 9, 14,
    …) is a test sample — 359 test, 1438 train — a fixed split that depends on no
    random generator.
``"fashion-mnist"`` / ``"mnist"``
    IDX files (``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``,
    ``t10k-…``): Fashion-MNIST from Debian's ``dataset-fashion-mnist`` package
    (``/usr/share/datasets/fashion-mnist``), MNIST from ``/usr/share/datasets/mnist``
    if present. The standard split (60000 train / 10000 test); pixels / 255,
    flattened to 784 features.
a directory path
    A directory holding such IDX files (MNIST's file names, gzipped or not).

:func:`load_idx` reads one IDX file (gzip or raw). Missing or malformed files raise
:class:`DatasetError` (also an ``OSError`` subclass :class:`DatasetNotFoundError` for
missing files) naming the path.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._core import OhmflowError

__all__ = ["Dataset", "DatasetError", "DatasetNotFoundError", "load", "load_idx", "DATASETS",
           "FASHION_MNIST_DIR", "MNIST_DIR"]

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
"""Where Debian's ``dataset-fashion-mnist`` package installs its IDX files."""
MNIST_DIR = "/usr/share/datasets/mnist"

DATASETS = ("digits", "fashion-mnist", "mnist")


class DatasetError(OhmflowError, ValueError):
    """A data set file is malformed, or a data set name is unknown."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """A data set file or directory does not exist."""


@dataclass
class Dataset:
    """Train and test splits: features in [0, 1] (n, n_features), integer labels (n,)."""

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    image_shape: tuple[int, ...] | None = None
    source: str = ""

    @property
    def n_features(self) -> int:
        return int(self.X_train.shape[1])

    def subset(self, n_train: int | None = None, n_test: int | None = None) -> Dataset:
        """The first ``n_train`` / ``n_test`` samples of each split."""
        return Dataset(self.name, self.X_train[:n_train], self.y_train[:n_train],
                       self.X_test[:n_test], self.y_test[:n_test], self.n_classes,
                       self.image_shape, self.source)

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, train={len(self.y_train)}, test={len(self.y_test)}, "
                f"features={self.n_features}, classes={self.n_classes})")


# ------------------------------------------------------------------ IDX files
_IDX_TYPES = {
    0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8"),
}


def load_idx(path: str | os.PathLike) -> np.ndarray:
    """Reads an IDX file (the MNIST format), gzip-compressed or raw.

    The format: two zero bytes, a type byte (0x08 uint8, 0x09 int8, 0x0B int16,
    0x0C int32, 0x0D float32, 0x0E float64), the number of dimensions, then each
    dimension as a big-endian uint32, then the data in C order, big-endian.

    Returns
    -------
    numpy.ndarray
        With the file's shape, in native byte order.

    Raises
    ------
    DatasetNotFoundError
        The file does not exist.
    DatasetError
        The file is not a valid IDX file (bad magic, truncated, corrupt gzip).
    """
    p = Path(path)
    try:
        with open(p, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise DatasetNotFoundError(2, "IDX file not found", str(p)) from None
    except IsADirectoryError:
        raise DatasetError(f"{p}: is a directory, not an IDX file") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, ValueError) as e:
            raise DatasetError(f"{p}: corrupt gzip data ({e})") from None
    if len(raw) < 4:
        raise DatasetError(f"{p}: not an IDX file (only {len(raw)} bytes)")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DatasetError(f"{p}: not an IDX file (magic bytes {raw[:4].hex()}; expected "
                           "00 00 <type 08/09/0b/0c/0d/0e> <ndim>)")
    dtype, ndim = _IDX_TYPES[raw[2]], raw[3]
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise DatasetError(f"{p}: truncated IDX header ({ndim} dimensions announced)")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
    count = int(np.prod(shape, dtype=np.int64)) if ndim else 1
    need = head + count * dtype.itemsize
    if len(raw) != need:
        raise DatasetError(f"{p}: IDX size mismatch: shape {shape} of {dtype.name} needs "
                           f"{need} bytes, the file has {len(raw)}")
    data = np.frombuffer(raw, dtype, count, head).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def _find_idx(directory: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    # Some distributions use dots: train-images.idx3-ubyte
    alt = stem.replace("-idx", ".idx")
    for name in (alt, alt + ".gz"):
        if (directory / name).is_file():
            return directory / name
    raise DatasetNotFoundError(2, f"IDX file {stem}[.gz] not found in directory",
                               str(directory / stem))


def _load_idx_dir(directory: str | os.PathLike, name: str, hint: str = "") -> Dataset:
    d = Path(directory)
    if not d.exists():
        raise DatasetNotFoundError(2, f"{name}: data directory not found{hint}", str(d))
    if not d.is_dir():
        raise DatasetError(f"{d}: not a directory of IDX files")
    parts = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        xp = _find_idx(d, f"{prefix}-images-idx3-ubyte")
        yp = _find_idx(d, f"{prefix}-labels-idx1-ubyte")
        x, y = load_idx(xp), load_idx(yp)
        if x.ndim < 2:
            raise DatasetError(f"{xp}: expected images (n, ...), got shape {x.shape}")
        if y.ndim != 1 or y.shape[0] != x.shape[0]:
            raise DatasetError(f"{yp}: expected {x.shape[0]} labels, got shape {y.shape}")
        if y.size and (y.min() < 0):
            raise DatasetError(f"{yp}: negative labels")
        scale = 255.0 if x.dtype == np.uint8 else max(float(np.max(x)), 1.0) if x.size else 1.0
        parts[split] = (x.reshape(x.shape[0], -1).astype(np.float64) / scale,
                        y.astype(np.int64), x.shape[1:])
    (xtr, ytr, shape), (xte, yte, shape_te) = parts["train"], parts["test"]
    if xtr.shape[1] != xte.shape[1]:
        raise DatasetError(f"{d}: train and test images differ in shape ({shape} vs {shape_te})")
    n_classes = int(max(ytr.max(initial=-1), yte.max(initial=-1)) + 1)
    return Dataset(name, xtr, ytr, xte, yte, max(n_classes, 1), tuple(shape), str(d))


def _digits() -> Dataset:
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:  # pragma: no cover - scikit-learn is a dependency
        raise DatasetError("the 'digits' data set needs scikit-learn "
                           "(pip install scikit-learn)") from e
    d = load_digits()
    x = np.asarray(d.data, dtype=np.float64) / 16.0
    y = np.asarray(d.target, dtype=np.int64)
    test = np.arange(len(y)) % 5 == 4
    return Dataset("digits", x[~test], y[~test], x[test], y[test], 10, (8, 8),
                   "sklearn.datasets.load_digits")


def load(name: str | os.PathLike = "digits", **kwargs: Any) -> Dataset:
    """Loads a data set by name (``"digits"``, ``"fashion-mnist"``, ``"mnist"``) or from
    a directory of IDX files; see the module docstring for the splits."""
    if isinstance(name, str) and name.lower() in DATASETS:
        key = name.lower()
        if key == "digits":
            return _digits()
        if key == "fashion-mnist":
            return _load_idx_dir(kwargs.get("directory", FASHION_MNIST_DIR), "fashion-mnist",
                                 " (install Debian's package: apt-get install "
                                 "dataset-fashion-mnist, or pass the directory path)")
        return _load_idx_dir(kwargs.get("directory", MNIST_DIR), "mnist",
                             " (pass a directory of MNIST IDX files)")
    p = Path(name)
    if p.exists() or os.sep in str(name) or str(name).startswith("."):
        return _load_idx_dir(p, p.name or str(p))
    raise DatasetError(f"unknown data set {str(name)!r}: use one of {DATASETS} "
                       "or a directory of IDX files")
