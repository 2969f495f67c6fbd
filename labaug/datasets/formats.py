"""The formats a dataset's files come in, each turned into `RawImages`.

* ``cifar``: a CIFAR python archive (``*.tar.gz``): CIFAR-10's layout (``data_batch_1..5``,
  ``test_batch``, ``batches.meta``) or CIFAR-100's (``train``, ``test``, ``meta``, fine
  labels); pickles are unpickled only after the archive's checksum (a built-in dataset's).
* ``idx``: four MNIST-style idx files, ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
  ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each gzipped or not.
* ``npz``: one ``.npz`` with ``x_train``, ``y_train``, ``x_test``, ``y_test`` (images (N, H, W),
  (N, H, W, C) or (N, C, H, W), uint8 or float; labels integers 0..K-1) and optionally
  ``classes`` (names).
* ``imagefolder``: torchvision's ImageFolder convention, ``train/<class>/*.png|jpg`` and
  ``test/<class>/*``; classes are the folder names in sorted order.

Every reader checks what it reads and says what is wrong naming the dataset's config key
(`check_raw`): labels outside 0..K-1, a class without training examples, fewer than 2 classes,
images of mixed shapes, train and test images of different shapes or channels.
"""

from __future__ import annotations

import io
import pickle
import tarfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labaug.datasets.base import Dataset, RawDataError, RawImages

Parser = Callable[[Mapping[str, bytes]], RawImages]

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte")
"""The four files of an idx dataset, without the optional ``.gz``."""
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
SPLITS = ("train", "test")


# --- CIFAR python archives ---------------------------------------------------------------------

def _unpickle(data: bytes) -> dict[str, Any]:
    """Load one CIFAR python pickle (written by Python 2) with its keys as str."""
    obj = pickle.loads(data, encoding="latin1")  # noqa: S301 - bytes verified by checksum
    if not isinstance(obj, dict):
        raise RawDataError(f"expected a dict in a CIFAR pickle, got {type(obj).__name__}")
    return {k.decode() if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def _names(values: Any) -> tuple[str, ...]:
    """Class names as str (CIFAR pickles may hold bytes)."""
    return tuple(v.decode() if isinstance(v, bytes) else str(v) for v in values)


def _cifar_batch(batch: Mapping[str, Any], label_key: str, member: str
                 ) -> tuple[np.ndarray, np.ndarray]:
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


CIFAR_LAYOUTS: Mapping[str, Mapping[str, Any]] = {
    "cifar10": {"folder": "cifar-10-batches-py",
                "train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",),
                "meta": "batches.meta", "label_key": "labels", "names_key": "label_names"},
    "cifar100": {"folder": "cifar-100-python", "train": ("train",), "test": ("test",),
                 "meta": "meta", "label_key": "fine_labels", "names_key": "fine_label_names"},
}
"""The two CIFAR archive layouts: member folder and names, label keys."""


def _archive_members(archive: bytes) -> dict[str, bytes]:
    """Every regular file of a gzipped tar archive, by member name."""
    members: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            for info in tar.getmembers():
                if info.isfile():
                    fh = tar.extractfile(info)
                    if fh is not None:
                        members[info.name] = fh.read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
        raise RawDataError(f"cannot read the CIFAR archive: {err}") from err
    return members


def parse_cifar(archive: bytes, layout: Mapping[str, Any] | None = None) -> RawImages:
    """A CIFAR python archive's images; ``layout`` one of `CIFAR_LAYOUTS` (None: found from
    the archive's member names)."""
    members = _archive_members(archive)
    if layout is None:
        names = {Path(m).name for m in members}
        found = [lay for lay in CIFAR_LAYOUTS.values()
                 if {*lay["train"], *lay["test"], lay["meta"]} <= names]
        if not found:
            raise RawDataError("the archive has neither CIFAR-10's members (data_batch_1..5, "
                               "test_batch, batches.meta) nor CIFAR-100's (train, test, meta)")
        layout = found[0]
    by_name = {Path(m).name: data for m, data in members.items()}
    wanted = {*layout["train"], *layout["test"], layout["meta"]}
    missing = sorted(wanted - set(by_name))
    if missing:
        raise RawDataError(f"the CIFAR archive lacks {missing}")

    def split(names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        parts = [_cifar_batch(_unpickle(by_name[n]), layout["label_key"], n) for n in names]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    x_train, y_train = split(layout["train"])
    x_test, y_test = split(layout["test"])
    classes = _names(_unpickle(by_name[layout["meta"]])[layout["names_key"]])
    return RawImages(x_train, y_train, x_test, y_test, classes)


# --- idx files ---------------------------------------------------------------------------------

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


def parse_idx_files(files: Mapping[str, bytes], names: Sequence[str],
                    classes: Sequence[str] | None) -> RawImages:
    """Four idx files (train images, train labels, test images, test labels, by ``names``)
    as images (N, 1, H, W); class names ``classes`` (None: the label values)."""
    def images(name: str) -> np.ndarray:
        x = parse_idx(files[name], name)
        if x.ndim != 3:
            raise RawDataError(f"{name}: expected (N, H, W) images, got shape {x.shape}")
        return x[:, None, :, :]

    def labels(name: str) -> np.ndarray:
        y = parse_idx(files[name], name)
        if y.ndim != 1:
            raise RawDataError(f"{name}: expected a vector of labels, got shape {y.shape}")
        return y.astype(np.int64)

    y_train, y_test = labels(names[1]), labels(names[3])
    return RawImages(images(names[0]), y_train, images(names[2]), y_test,
                     tuple(classes) if classes else default_classes(y_train, y_test))


def default_classes(*labels: np.ndarray) -> tuple[str, ...]:
    """Class names '0', '1', ... up to the largest label."""
    top = max((int(y.max()) for y in labels if y.size), default=-1)
    return tuple(str(k) for k in range(top + 1))


# --- a user's npz ------------------------------------------------------------------------------

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
LAYOUTS = ("NCHW", "NHWC", "NHW")


def image_layout(shape: tuple[int, ...], key: str) -> str:
    """The layout of images of ``shape``: NHW, NCHW or NHWC (channels 1, 3 or 4, on the side
    where the other is not); an ambiguous one names the entry's ``layout`` key to set."""
    if len(shape) == 3:
        return "NHW"
    if len(shape) != 4:
        raise RawDataError(f"{key}: images must be (N, H, W), (N, H, W, C) or (N, C, H, W); got "
                           f"shape {shape}")
    first, last = shape[1] in (1, 3, 4), shape[3] in (1, 3, 4)
    if first and not last:
        return "NCHW"
    if last and not first:
        return "NHWC"
    raise RawDataError(f"{key}: cannot tell whether images of shape {shape} are (N, C, H, W) or "
                       f"(N, H, W, C); set {key}.layout to NCHW or NHWC")


def to_nchw(x: np.ndarray, layout: str) -> np.ndarray:
    """Images in ``layout`` as (N, C, H, W); uint8 kept, any other numbers as float32."""
    if layout == "NHW":
        x = x[:, None]
    elif layout == "NHWC":
        x = np.moveaxis(x, 3, 1)
    if x.dtype != np.uint8:
        if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
            raise RawDataError(f"images must be numbers, got {x.dtype}")
        x = x.astype(np.float32)
    return np.ascontiguousarray(x)


def parse_npz(data: bytes, dataset: Dataset) -> RawImages:
    """A user's npz (see the module docstring), checked key by key."""
    key = dataset.key
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as f:
            missing = [k for k in NPZ_KEYS if k not in f.files]
            if missing:
                raise RawDataError(f"{key}: {dataset.path} lacks {', '.join(missing)} (an npz "
                                   "dataset holds x_train, y_train, x_test, y_test)")
            arrays = {k: f[k] for k in NPZ_KEYS}
            names = tuple(str(c) for c in f["classes"]) if "classes" in f.files else None
    except RawDataError:
        raise
    except Exception as err:  # noqa: BLE001 - a damaged npz fails in many types
        raise RawDataError(f"{key}: cannot read {dataset.path} as an npz ({err})") from err
    layout = dataset.options.get("layout")
    images = []
    for split in SPLITS:
        x = arrays[f"x_{split}"]
        lay = layout or image_layout(x.shape, key)
        images.append(to_nchw(x, lay))
    labels = []
    for split in SPLITS:
        y = arrays[f"y_{split}"]
        if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer)
                               or (y.size and np.all(np.mod(y, 1) == 0))):
            raise RawDataError(f"{key}: y_{split} must be a vector of integer labels; got "
                               f"{y.dtype} of shape {y.shape}")
        labels.append(y.astype(np.int64))
    classes = dataset.classes or names or default_classes(*labels)
    return RawImages(images[0], labels[0], images[1], labels[1], tuple(classes))


# --- ImageFolder -------------------------------------------------------------------------------

def folder_classes(root: Path, key: str) -> tuple[str, ...]:
    """The class folders of ``root``/train, sorted (torchvision's ImageFolder convention)."""
    train = root / "train"
    if not train.is_dir():
        raise RawDataError(f"{key}: {train} is missing (an imagefolder dataset has train/<class>/ "
                           "and test/<class>/ folders of images)")
    return tuple(sorted(p.name for p in train.iterdir() if p.is_dir()))


def folder_images(root: Path, split: str) -> list[Path]:
    """Every image file of ``root``/``split``/<class>/, sorted."""
    return sorted(p for p in (root / split).glob("*/*")
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def read_imagefolder(dataset: Dataset, files: Mapping[str, bytes]) -> RawImages:
    """An ImageFolder dataset from its files' verified bytes (``split/class/name`` keys)."""
    from PIL import Image

    key = dataset.key
    classes = dataset.classes or tuple(sorted({Path(n).parts[1] for n in files
                                               if Path(n).parts[0] == "train"}))
    index = {c: k for k, c in enumerate(classes)}
    out: list[np.ndarray] = []
    for split in SPLITS:
        names = sorted(n for n in files if Path(n).parts[0] == split)
        if not names:
            raise RawDataError(f"{key}: {dataset.path}/{split}/ holds no images")
        images: list[np.ndarray] = []
        labels: list[int] = []
        shapes: dict[tuple[int, ...], str] = {}
        for name in names:
            cls = Path(name).parts[1]
            if cls not in index:
                raise RawDataError(f"{key}: {name}: class folder {cls!r} is not among the "
                                   f"training classes ({', '.join(classes)})")
            try:
                with Image.open(io.BytesIO(files[name])) as im:
                    im.load()
                    mode = im.mode if im.mode in ("L", "RGB") else "RGB"
                    array = np.asarray(im.convert(mode), dtype=np.uint8)
            except Exception as err:  # noqa: BLE001 - PIL fails in many types
                raise RawDataError(f"{key}: cannot read the image {name} ({err})") from err
            if array.ndim == 2:
                array = array[:, :, None]
            shapes.setdefault(array.shape, name)
            images.append(array)
            labels.append(index[cls])
        if len(shapes) > 1:
            raise RawDataError(f"{key}: images of mixed shapes in {split}/: "
                               + "; ".join(f"{n} is {s[0]}x{s[1]}x{s[2]}"
                                           for s, n in list(shapes.items())[:3]))
        out += [np.ascontiguousarray(np.stack(images).transpose(0, 3, 1, 2)),
                np.asarray(labels, dtype=np.int64)]
    return RawImages(out[0], out[1], out[2], out[3], tuple(classes))


# --- every format ------------------------------------------------------------------------------

def parse(dataset: Dataset, files: Mapping[str, bytes]) -> RawImages:
    """The raw images of ``dataset`` from its files' verified bytes (by file name)."""
    if dataset.format == "cifar":
        (archive,) = files.values()
        layout = dataset.options.get("cifar_layout")
        raw = parse_cifar(archive, CIFAR_LAYOUTS[layout] if layout else None)
        if dataset.classes:
            raw = RawImages(raw.x_train, raw.y_train, raw.x_test, raw.y_test, dataset.classes)
    elif dataset.format == "idx":
        names = dataset.options.get("idx_files") or tuple(
            next(n for n in files if n.removesuffix(".gz") == base) for base in IDX_FILES)
        raw = parse_idx_files(files, names, dataset.classes)
    elif dataset.format == "npz":
        (data,) = files.values()
        raw = parse_npz(data, dataset)
    elif dataset.format == "imagefolder":
        raw = read_imagefolder(dataset, files)
    else:
        raise RawDataError(f"{dataset.key}: unknown format {dataset.format!r}")
    check_raw(raw, dataset)
    return raw


def check_raw(raw: RawImages, dataset: Dataset) -> None:
    """Reject data that breaks the raw contract, naming the dataset's config key: images
    (N, C, H, W) uint8 or float32 of one shape for train and test, labels 0..K-1, at least 2
    classes; and, for a user's dataset, training examples of every class (a built-in dataset's
    content is fixed by its checksums)."""
    key = dataset.key
    k = len(raw.classes)
    if k < 2:
        raise RawDataError(f"{key}: {k} class{'es' if k != 1 else ''} ({', '.join(raw.classes)}); "
                           "a dataset needs at least 2")
    for split, x, y in (("train", raw.x_train, raw.y_train), ("test", raw.x_test, raw.y_test)):
        if x.dtype not in (np.uint8, np.float32) or x.ndim != 4 or len(x) != len(y):
            raise RawDataError(f"{key} {split}: images {x.dtype} {x.shape} with {len(y)} "
                               "labels break the (N, C, H, W) contract")
        if len(y) == 0:
            raise RawDataError(f"{key}: the {split} split holds no images")
        if y.min() < 0 or y.max() >= k:
            bad = sorted({int(v) for v in y[(y < 0) | (y >= k)]})[:5]
            raise RawDataError(f"{key} {split}: labels {bad} outside 0..{k - 1} (the dataset has "
                               f"{k} classes: {', '.join(raw.classes[:10])}"
                               f"{', ...' if k > 10 else ''})")
    if raw.x_train.shape[1:] != raw.x_test.shape[1:]:
        raise RawDataError(f"{key}: training images are {_shape(raw.x_train)} but test images "
                           f"{_shape(raw.x_test)} (channels x height x width)")
    empty = [raw.classes[c] for c in range(k) if not np.any(raw.y_train == c)]
    if empty and not dataset.builtin:
        raise RawDataError(f"{key}: class{'es' if len(empty) > 1 else ''} "
                           f"{', '.join(map(repr, empty))} ha{'ve' if len(empty) > 1 else 's'} no "
                           "training examples")


def _shape(x: np.ndarray) -> str:
    """C x H x W of an image array."""
    return "x".join(str(int(d)) for d in x.shape[1:])
