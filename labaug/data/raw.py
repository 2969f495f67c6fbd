"""Raw image datasets as DAG roots: data/raw/{dataset}.npz with uint8 images in NCHW order.

Acquisition (``fetch``): the official files from a local source directory first, else a
download through torchvision's helper. Every file is checksummed BEFORE anything is unpickled
or decoded: CIFAR archives against their official md5, Fashion-MNIST idx files against the
sha256 of their decompressed bytes (Debian's ``dataset-fashion-mnist`` recompressed them, so
their gzip bytes differ from upstream while the content does not). The verified bytes are the
ones that get parsed, and the npz is written atomically, so a corrupt source leaves nothing.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import os
import pickle
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import numpy as np

from labaug.errors import CorruptFileError
from labaug.io import atomic_path

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]
Algorithm = Literal["md5", "sha256"]


@dataclass(frozen=True)
class RawImages:
    """A whole raw dataset: uint8 images (N, C, H, W), int64 labels, and class names."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]


def save_npz(raw: RawImages, path: str | os.PathLike[str]) -> None:
    """Write the npz atomically (never a half-written file at ``path``)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, x_train=raw.x_train, y_train=raw.y_train, x_test=raw.x_test,
                     y_test=raw.y_test, classes=np.array(raw.classes))
        back = load_npz(tmp)   # verify after write: a file at ``path`` is always readable
        if back.x_train.shape != raw.x_train.shape or back.x_test.shape != raw.x_test.shape:
            raise CorruptFileError(tmp, "read back with other shapes than written")


def load_npz(path: str | os.PathLike[str]) -> RawImages:
    """Read data/raw/{dataset}.npz; an unreadable file raises CorruptFileError naming it."""
    try:
        with np.load(Path(path), allow_pickle=False) as f:
            return RawImages(
                x_train=f["x_train"], y_train=f["y_train"].astype(np.int64),
                x_test=f["x_test"], y_test=f["y_test"].astype(np.int64),
                classes=tuple(str(c) for c in f["classes"]),
            )
    except FileNotFoundError:
        raise
    except Exception as err:  # noqa: BLE001 - a damaged zip fails in many types; all mean unreadable
        raise CorruptFileError(path, f"{type(err).__name__}: {err}") from err


# --- acquisition ---------------------------------------------------------------------------


class RawDataError(RuntimeError):
    """A raw dataset could not be acquired: missing, corrupt, or not the official files."""


class ChecksumError(RawDataError):
    """A source file's checksum differs from the official one."""


@dataclass(frozen=True)
class SourceFile:
    """One official file of a dataset: its name, where to download it, and its checksum.

    ``digest`` is the ``algorithm`` hex digest of the file's bytes, or of its decompressed
    bytes when ``decompressed`` is true (then an already-gunzipped copy, named without
    ``.gz``, is accepted too). ``download_md5`` is the md5 of the downloaded bytes.
    """

    name: str
    url: str
    digest: str
    algorithm: Algorithm = "md5"
    decompressed: bool = False
    download_md5: str | None = None

    def candidates(self, directory: Path) -> tuple[Path, ...]:
        """Paths under ``directory`` this file may have."""
        paths = [directory / self.name]
        if self.decompressed and self.name.endswith(".gz"):
            paths.append(directory / self.name[: -len(".gz")])
        return tuple(paths)


Parser = Callable[[Mapping[str, bytes]], RawImages]


@dataclass(frozen=True)
class ArchiveSpec:
    """One image dataset: its name and title, its official files and the parser of their bytes.

    The entries of `SPECS` are the one list of image datasets: the config schema's dataset
    names, class-pair bounds and source keys (`labaug.schema.with_datasets`), the workflow's
    wildcards and the figures' titles all read it.
    """

    dataset: str
    title: str
    """The name figures print, e.g. 'Fashion-MNIST'."""
    num_classes: int
    """How many classes its labels index (bounds the config's class pair)."""
    files: tuple[SourceFile, ...]
    parse: Parser
    offline_hint: str = ""
    """Where the files can be had without a download, said when they are missing."""

    def with_digests(self, digests: Mapping[str, str]) -> ArchiveSpec:
        """The same spec expecting other checksums (file name -> hex digest), e.g. for tests."""
        unknown = set(digests) - {f.name for f in self.files}
        if unknown:
            raise KeyError(f"{self.dataset} has no files named {sorted(unknown)}")
        files = tuple(
            SourceFile(f.name, f.url, digests.get(f.name, f.digest), f.algorithm,
                       f.decompressed, None if f.name in digests else f.download_md5)
            for f in self.files
        )
        return replace(self, files=files)


def _digest(data: bytes, algorithm: Algorithm) -> str:
    """Hex digest of ``data``."""
    return hashlib.new(algorithm, data).hexdigest()


def _unpickle(data: bytes) -> dict[str, Any]:
    """Load one CIFAR python pickle (written by Python 2) with its keys as str."""
    obj = pickle.loads(data, encoding="latin1")  # noqa: S301 - bytes verified by checksum
    if not isinstance(obj, dict):
        raise RawDataError(f"expected a dict in a CIFAR pickle, got {type(obj).__name__}")
    return {k.decode() if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def _names(values: Any) -> tuple[str, ...]:
    """Class names as str (CIFAR pickles may hold bytes)."""
    return tuple(v.decode() if isinstance(v, bytes) else str(v) for v in values)


def _cifar_batch(batch: Mapping[str, Any], label_key: str, member: str) -> tuple[np.ndarray,
                                                                                   np.ndarray]:
    """Images (N, 3, 32, 32) and labels of one CIFAR batch: rows are 1024 R, G, B values."""
    try:
        data = np.asarray(batch["data"], dtype=np.uint8)
        labels = np.asarray(batch[label_key], dtype=np.int64)
    except KeyError as err:
        raise RawDataError(f"{member}: missing key {err}") from err
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise RawDataError(f"{member}: data {data.shape} and {len(labels)} labels do not form "
                           "N images of 3x32x32")
    return data.reshape(-1, 3, 32, 32), labels


def _cifar_parser(folder: str, train: tuple[str, ...], test: tuple[str, ...], meta: str,
                  label_key: str, names_key: str) -> Parser:
    """A parser of a CIFAR python archive (pickles inside a tar.gz)."""

    def parse(files: Mapping[str, bytes]) -> RawImages:
        (archive,) = files.values()
        members: dict[str, bytes] = {}
        wanted = {f"{folder}/{name}" for name in (*train, *test, meta)}
        try:
            with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
                for info in tar.getmembers():
                    if info.name in wanted and info.isfile():
                        fh = tar.extractfile(info)
                        if fh is not None:
                            members[info.name] = fh.read()
        except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
            raise RawDataError(f"cannot read the CIFAR archive: {err}") from err
        missing = sorted(wanted - set(members))
        if missing:
            raise RawDataError(f"the CIFAR archive lacks {missing}")

        def split(names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
            parts = [_cifar_batch(_unpickle(members[f"{folder}/{n}"]), label_key, n)
                     for n in names]
            return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))

        x_train, y_train = split(train)
        x_test, y_test = split(test)
        classes = _names(_unpickle(members[f"{folder}/{meta}"])[names_key])
        return RawImages(x_train, y_train, x_test, y_test, classes)

    return parse


IDX_UBYTE = 0x08


def parse_idx(data: bytes, name: str = "idx") -> np.ndarray:
    """Decode an uncompressed idx file of unsigned bytes (MNIST format) into a uint8 array."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != IDX_UBYTE:
        raise RawDataError(f"{name}: not an idx file of unsigned bytes")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise RawDataError(f"{name}: truncated idx header")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    if len(data) != header + int(np.prod(shape)):
        raise RawDataError(f"{name}: {len(data) - header} data bytes, shape {shape} needs "
                           f"{int(np.prod(shape))}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()


FMNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                  "Sneaker", "Bag", "Ankle boot")


def idx_parser(train_images: str, train_labels: str, test_images: str, test_labels: str,
               classes: tuple[str, ...]) -> Parser:
    """A parser of an MNIST-style dataset: four idx files; images become (N, 1, H, W)."""

    def images(files: Mapping[str, bytes], name: str) -> np.ndarray:
        x = parse_idx(files[name], name)
        if x.ndim != 3:
            raise RawDataError(f"{name}: expected (N, H, W) images, got shape {x.shape}")
        return x[:, None, :, :]

    def labels(files: Mapping[str, bytes], name: str) -> np.ndarray:
        y = parse_idx(files[name], name)
        if y.ndim != 1:
            raise RawDataError(f"{name}: expected a vector of labels, got shape {y.shape}")
        return y.astype(np.int64)

    def parse(files: Mapping[str, bytes]) -> RawImages:
        return RawImages(images(files, train_images), labels(files, train_labels),
                         images(files, test_images), labels(files, test_labels), classes)

    return parse


_FMNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"

# The image datasets, one entry each (README "Adding a dataset"). Official checksums: CIFAR
# md5s are torchvision's (the archives' published md5s); the Fashion-MNIST sha256s are of the
# decompressed idx bytes, identical upstream and in Debian; the download md5s are of
# torchvision's upstream gzip files.
SPECS: Mapping[str, ArchiveSpec] = MappingProxyType({
    "cifar10": ArchiveSpec(
        "cifar10", "CIFAR-10", 10,
        (SourceFile("cifar-10-python.tar.gz",
                    "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                    "c58f30108f718f92721af3b95e74349a",
                    download_md5="c58f30108f718f92721af3b95e74349a"),),
        _cifar_parser("cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)),
                      ("test_batch",), "batches.meta", "labels", "label_names"),
    ),
    "cifar100": ArchiveSpec(
        "cifar100", "CIFAR-100", 100,
        (SourceFile("cifar-100-python.tar.gz",
                    "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                    "eb9058c3a382ffc7106e4002c42a8d85",
                    download_md5="eb9058c3a382ffc7106e4002c42a8d85"),),
        _cifar_parser("cifar-100-python", ("train",), ("test",), "meta", "fine_labels",
                      "fine_label_names"),
    ),
    "fmnist": ArchiveSpec(
        "fmnist", "Fashion-MNIST", len(FMNIST_CLASSES),
        tuple(
            SourceFile(name, _FMNIST_URL + name, sha, "sha256", decompressed=True,
                       download_md5=md5)
            for name, sha, md5 in (
                ("train-images-idx3-ubyte.gz",
                 "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
                 "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
                ("train-labels-idx1-ubyte.gz",
                 "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
                 "25c81989df183df01b3e8a0aad5dffbe"),
                ("t10k-images-idx3-ubyte.gz",
                 "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
                 "bef4ecab320f06d8554ea6380940ec79"),
                ("t10k-labels-idx1-ubyte.gz",
                 "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
                 "bb300cfdad3c16e7a12a480ee83cd310"),
            )
        ),
        idx_parser("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                   "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", FMNIST_CLASSES),
        offline_hint="Debian: apt-get install dataset-fashion-mnist provides them under "
                     "/usr/share/datasets/fashion-mnist",
    ),
})


NPZ_FORMAT = 1
"""The layout of a prepared npz; a new layout names new prepared files (`prepared_name`)."""


def prepared_name(dataset: str, checksums: Mapping[str, str] | None = None) -> str:
    """The file name of ``dataset`` prepared from files with its official checksums (or with
    ``checksums`` replacing some of them): the same verified files give the same name."""
    spec = _spec(dataset, None)
    if checksums:
        spec = spec.with_digests(checksums)
    key = hashlib.sha256(repr((NPZ_FORMAT, dataset, [(f.name, f.algorithm, f.digest)
                                                     for f in spec.files])).encode())
    return f"{dataset}-{key.hexdigest()[:16]}.npz"


def dataset_title(dataset: str) -> str:
    """The title figures print for ``dataset`` (its name when it is not in `SPECS`)."""
    spec = SPECS.get(dataset)
    return dataset if spec is None else spec.title


def read_verified(path: Path, spec: SourceFile) -> bytes:
    """The bytes of ``path`` to parse (decompressed if so specified), after their checksum."""
    data = path.read_bytes()
    if spec.decompressed and path.name.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as err:
            raise RawDataError(f"{path}: corrupt or truncated gzip file ({err}); replace it "
                               "with the official file and rerun") from err
    got = _digest(data, spec.algorithm)
    if got != spec.digest:
        what = "decompressed content" if spec.decompressed else "file"
        raise ChecksumError(f"{path}: {spec.algorithm} of the {what} is {got}, expected "
                            f"{spec.digest}; the file is corrupt, truncated or not the official "
                            f"{spec.name}. Replace it and rerun.")
    return data


def _spec(dataset: str, specs: Mapping[str, ArchiveSpec] | None) -> ArchiveSpec:
    """The registry entry of ``dataset``."""
    registry = SPECS if specs is None else specs
    if dataset not in registry:
        raise ValueError(f"unknown raw dataset {dataset!r}; known: {sorted(registry)}")
    return registry[dataset]


def local_source_files(dataset: str, source_dir: PathLike | None) -> list[str]:
    """The dataset's files in ``source_dir`` when it holds all of them, else an empty list."""
    if source_dir is None:
        return []
    found = _local_files(_spec(dataset, None), Path(source_dir))
    return [] if found is None else [str(p) for p in found.values()]


def _local_files(spec: ArchiveSpec, source_dir: Path) -> dict[str, Path] | None:
    """The dataset's files in ``source_dir``, or None when any is absent."""
    found: dict[str, Path] = {}
    for f in spec.files:
        path = next((p for p in f.candidates(source_dir) if p.is_file()), None)
        if path is None:
            return None
        found[f.name] = path
    return found


def _download(spec: ArchiveSpec, directory: Path) -> dict[str, Path]:
    """Download the dataset's files into ``directory`` with torchvision's helper."""
    from torchvision.datasets.utils import download_url

    paths: dict[str, Path] = {}
    for f in spec.files:
        log.info("downloading %s", f.url)
        download_url(f.url, str(directory), filename=f.name, md5=f.download_md5)
        paths[f.name] = directory / f.name
    return paths


def _missing_message(spec: ArchiveSpec, source_dir: Path | None, reason: str,
                     download_tried: bool) -> str:
    """Say exactly which files to put where, and which config key names the directory."""
    names = ", ".join(f.name for f in spec.files)
    where = (f"the directory {source_dir}" if source_dir is not None
             else "a directory of your choice")
    return (f"{spec.dataset}: {reason}. Put the official file(s) {names} into {where} and set "
            f"data_sources.{spec.dataset} in config.yaml to that directory"
            + (f" ({spec.offline_hint})" if spec.offline_hint else "")
            + (", or rerun on a machine with internet access." if download_tried
               else ", or allow downloads (allow_download: true) on a machine with internet "
                    "access."))


def fetch(
    dataset: str,
    source_dir: PathLike | None,
    allow_download: bool,
    out_npz: PathLike,
    *,
    specs: Mapping[str, ArchiveSpec] | None = None,
    checksums: Mapping[str, str] | None = None,
) -> RawImages:
    """Acquire ``dataset`` (local source first, else download), verify, parse, write the npz.

    ``specs`` replaces the registry of official files; ``checksums`` (file name -> hex digest)
    replaces the expected checksums of some files, e.g. for a repackaged mirror.
    """
    spec = _spec(dataset, specs)
    if checksums:
        spec = spec.with_digests(checksums)
    out = Path(out_npz)
    source = Path(source_dir) if source_dir is not None else None

    local = _local_files(spec, source) if source is not None else None
    if local is not None:
        log.info("%s: reading local source %s", dataset, source)
        payload = {f.name: read_verified(local[f.name], f) for f in spec.files}
    else:
        if source is not None:
            log.info("%s: %s does not hold every file of the dataset", dataset, source)
        if not allow_download:
            raise RawDataError(_missing_message(
                spec, source, "no local source and downloads are disabled", download_tried=False))
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f".download-{dataset}-", dir=out.parent) as tmp:
            try:
                paths = _download(spec, Path(tmp))
            except Exception as err:  # network errors come in many types; all mean "no file"
                raise RawDataError(_missing_message(
                    spec, source, f"download failed ({err})", download_tried=True)) from err
            payload = {f.name: read_verified(paths[f.name], f) for f in spec.files}

    raw = spec.parse(payload)
    _check(raw, dataset)
    save_npz(raw, out)
    log.info("%s: wrote %s (%d train, %d test images of shape %s, %d classes)", dataset, out,
             len(raw.y_train), len(raw.y_test), raw.x_train.shape[1:], len(raw.classes))
    return raw


def _check(raw: RawImages, dataset: str) -> None:
    """Reject parsed data that breaks the npz contract."""
    for split, x, y in (("train", raw.x_train, raw.y_train), ("test", raw.x_test, raw.y_test)):
        if x.dtype != np.uint8 or x.ndim != 4 or len(x) != len(y):
            raise RawDataError(f"{dataset} {split}: images {x.dtype} {x.shape} with {len(y)} "
                               "labels break the (N, C, H, W) uint8 contract")
        if len(y) and (y.min() < 0 or y.max() >= len(raw.classes)):
            raise RawDataError(f"{dataset} {split}: labels outside [0, {len(raw.classes)})")
