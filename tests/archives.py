"""Small fake datasets in the exact on-disk layouts of the official files.

CIFAR-10: ``cifar-10-python.tar.gz`` holding ``cifar-10-batches-py/`` with ``data_batch_1..5``,
``test_batch``, ``batches.meta`` and ``readme.html``; every batch is a pickled dict with
``batch_label``, ``labels``, ``data`` (N x 3072 uint8: 1024 R, 1024 G, 1024 B values, row-major)
and ``filenames``. CIFAR-100: ``cifar-100-python.tar.gz`` holding ``cifar-100-python/`` with
``train``, ``test`` (``fine_labels``, ``coarse_labels``) and ``meta`` (``fine_label_names``,
``coarse_label_names``). Fashion-MNIST: four gzip-compressed idx files.

Each writer returns the RawImages a correct reader must produce, and ``spec_for`` gives the
registry entry whose checksums match the generated files.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import struct
import tarfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from labaug import datasets
from labaug.datasets import Dataset, RawImages

CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                 "ship", "truck")
CIFAR100_NAMES = ("apple", "aquarium_fish", "baby", "bear", "beaver")


def _images(rng: np.random.Generator, n: int, shape: tuple[int, ...]) -> np.ndarray:
    """Random uint8 images."""
    return rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)


def _labels(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """Random labels in [0, k) that include every class when n >= k."""
    y = rng.integers(0, k, size=n)
    y[: min(n, k)] = np.arange(min(n, k))
    return rng.permutation(y).astype(np.int64)


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    """Add one regular file to a tar archive."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    """Add a directory entry, as the official archives have."""
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    tar.addfile(info)


def _pickle(obj: object) -> bytes:
    """Pickle like the official files (protocol 2)."""
    return pickle.dumps(obj, protocol=2)


def write_cifar10(directory: Path, n_per_batch: int = 20, n_test: int = 30,
                  seed: int = 0) -> RawImages:
    """Write ``cifar-10-python.tar.gz`` into ``directory``; return what it holds."""
    rng = np.random.default_rng(seed)
    folder = "cifar-10-batches-py"
    xs, ys = [], []
    with tarfile.open(directory / "cifar-10-python.tar.gz", "w:gz") as tar:
        _add_dir(tar, folder)
        for i in range(1, 6):
            x, y = _images(rng, n_per_batch, (3, 32, 32)), _labels(rng, n_per_batch, 10)
            xs.append(x)
            ys.append(y)
            _add(tar, f"{folder}/data_batch_{i}", _pickle({
                "batch_label": f"training batch {i} of 5", "labels": y.tolist(),
                "data": x.reshape(n_per_batch, -1),
                "filenames": [f"img_{i}_{j}.png" for j in range(n_per_batch)]}))
        x_test, y_test = _images(rng, n_test, (3, 32, 32)), _labels(rng, n_test, 10)
        _add(tar, f"{folder}/test_batch", _pickle({
            "batch_label": "testing batch 1 of 1", "labels": y_test.tolist(),
            "data": x_test.reshape(n_test, -1),
            "filenames": [f"test_{j}.png" for j in range(n_test)]}))
        _add(tar, f"{folder}/batches.meta", _pickle({
            "num_cases_per_batch": n_per_batch, "label_names": list(CIFAR10_NAMES),
            "num_vis": 3072}))
        _add(tar, f"{folder}/readme.html", b"<html></html>")
    return RawImages(np.concatenate(xs), np.concatenate(ys), x_test, y_test, CIFAR10_NAMES)


def write_cifar100(directory: Path, n_train: int = 40, n_test: int = 20, seed: int = 0,
                   bytes_keys: bool = False) -> RawImages:
    """Write ``cifar-100-python.tar.gz`` into ``directory``; return what it holds.

    ``bytes_keys`` writes dict keys and names as bytes, as Python 2's str reads back with
    ``encoding='bytes'``; a reader must accept both.
    """
    rng = np.random.default_rng(seed)
    k = len(CIFAR100_NAMES)
    folder = "cifar-100-python"

    def key(s: str) -> str | bytes:
        return s.encode() if bytes_keys else s

    def split(n: int, tag: str) -> tuple[np.ndarray, np.ndarray, bytes]:
        x, y = _images(rng, n, (3, 32, 32)), _labels(rng, n, k)
        blob = _pickle({key("filenames"): [f"{tag}_{j}.png" for j in range(n)],
                        key("batch_label"): f"{tag} batch 1 of 1",
                        key("fine_labels"): y.tolist(),
                        key("coarse_labels"): (y // 2).tolist(),
                        key("data"): x.reshape(n, -1)})
        return x, y, blob

    x_train, y_train, train_blob = split(n_train, "training")
    x_test, y_test, test_blob = split(n_test, "testing")
    with tarfile.open(directory / "cifar-100-python.tar.gz", "w:gz") as tar:
        _add_dir(tar, folder)
        _add(tar, f"{folder}/file.txt~", b"")
        _add(tar, f"{folder}/train", train_blob)
        _add(tar, f"{folder}/test", test_blob)
        _add(tar, f"{folder}/meta", _pickle({
            key("fine_label_names"): [key(n) for n in CIFAR100_NAMES],
            key("coarse_label_names"): [key("fruit"), key("fish"), key("people")]}))
    return RawImages(x_train, y_train, x_test, y_test, CIFAR100_NAMES)


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as an idx file (magic 0x0000 08 ndim, big-endian dims, data)."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_idx_files(directory: Path, arrays: Mapping[str, np.ndarray],
                    compressed: bool = True) -> dict[str, str]:
    """Write each uint8 array as an idx file named by its key (+ ``.gz`` when compressed);
    returns {file name: sha256 of its uncompressed idx bytes}."""
    digests = {}
    for stem, arr in arrays.items():
        data = idx_bytes(arr)
        name = f"{stem}.gz" if compressed else stem
        (directory / name).write_bytes(gzip.compress(data, mtime=0) if compressed else data)
        digests[name] = hashlib.sha256(data).hexdigest()
    return digests


def write_fmnist(directory: Path, n_train: int = 60, n_test: int = 30, seed: int = 0,
                 compressed: bool = True) -> RawImages:
    """Write the four Fashion-MNIST idx files (gzip-compressed unless told not to)."""
    rng = np.random.default_rng(seed)
    x_train, y_train = _images(rng, n_train, (28, 28)), _labels(rng, n_train, 10)
    x_test, y_test = _images(rng, n_test, (28, 28)), _labels(rng, n_test, 10)
    write_idx_files(directory, {"train-images-idx3-ubyte": x_train,
                                "train-labels-idx1-ubyte": y_train.astype(np.uint8),
                                "t10k-images-idx3-ubyte": x_test,
                                "t10k-labels-idx1-ubyte": y_test.astype(np.uint8)}, compressed)
    from labaug.datasets.fmnist import CLASSES

    return RawImages(x_train[:, None], y_train, x_test[:, None], y_test, CLASSES)


def spec_for(dataset: str, directory: Path) -> Dataset:
    """The built-in ``dataset`` with checksums of the files generated in ``directory``."""
    spec = datasets.builtin()[dataset]
    digests = {}
    for f in spec.files:
        path = next(p for p in f.candidates(directory) if p.is_file())
        data = path.read_bytes()
        if f.decompressed and path.name.endswith(".gz"):
            data = gzip.decompress(data)
        digests[f.name] = hashlib.new(f.algorithm, data).hexdigest()
    return spec.with_digests(digests)


WRITERS: dict[str, Callable[..., RawImages]] = {
    "cifar10": write_cifar10, "cifar100": write_cifar100, "fmnist": write_fmnist}
