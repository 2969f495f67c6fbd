"""Raw image datasets as DAG roots: data/raw/{dataset}.npz with images in NCHW order.

Acquisition (`fetch`): a dataset's files (`labaug.datasets`: a built-in dataset's official
files, or a user's files under the path its config entry names) from a local directory first,
else a download. Every file with a known checksum is checked BEFORE anything is unpickled or
decoded: CIFAR archives against their official md5, Fashion-MNIST idx files against the sha256
of their decompressed bytes (Debian's ``dataset-fashion-mnist`` recompressed them, so their
gzip bytes differ from upstream while the content does not), a user's files against the
checksums its entry gives. The sha256 of every file read is recorded in the npz's provenance
(`sources`). The verified bytes are the ones that get parsed, and the npz is written
atomically, so a corrupt source leaves nothing.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import tempfile
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from labaug import datasets
from labaug.datasets.base import (
    ChecksumError,
    Dataset,
    RawDataError,
    RawImages,
    SourceFile,
)
from labaug.datasets.formats import parse, parse_idx
from labaug.errors import CorruptFileError
from labaug.io import atomic_path

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

__all__ = ["ChecksumError", "RawDataError", "RawImages", "SourceFile", "fetch", "load_npz",
           "load_sources", "local_source_files", "parse_idx", "prepared_name", "read_sources",
           "read_verified", "save_npz"]


def save_npz(raw: RawImages, path: str | os.PathLike[str],
             sources: Mapping[str, str] | None = None) -> None:
    """Write the npz atomically (never a half-written file at ``path``), with the sha256 of
    each source file read (``sources``) as its provenance."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, x_train=raw.x_train, y_train=raw.y_train, x_test=raw.x_test,
                     y_test=raw.y_test, classes=np.array(raw.classes),
                     sources=np.array(json.dumps(dict(sources or {}), sort_keys=True)))
        back = load_npz(tmp)   # verify after write: a file at ``path`` is always readable
        if back.x_train.shape != raw.x_train.shape or back.x_test.shape != raw.x_test.shape:
            raise CorruptFileError(tmp, "read back with other shapes than written")


def load_npz(path: str | os.PathLike[str]) -> RawImages:
    """Read data/raw/{dataset}.npz; an unreadable or altered file (the zip format checks each
    member's CRC-32) raises CorruptFileError naming it."""
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


def load_sources(path: str | os.PathLike[str]) -> dict[str, str]:
    """The provenance of a prepared npz: {source file: sha256 of the content read}."""
    with np.load(Path(path), allow_pickle=False) as f:
        return dict(json.loads(str(f["sources"]))) if "sources" in f.files else {}


NPZ_FORMAT = 2
"""The layout of a prepared npz; a new layout names new prepared files (`prepared_name`)."""


def prepared_name(dataset: Dataset, sources: Mapping[str, str] | None = None) -> str:
    """The file name of ``dataset`` prepared from its files: from the checksums it is
    verified against (a built-in dataset) or, for a dataset whose files have none, from the
    sha256 of the files read (``sources``) and the entry's format, classes and layout; the same
    files give the same name."""
    files: list[tuple[str, ...]] = [
        (f.name, f.algorithm, f.digest or dict(sources or {}).get(f.name, ""))
        for f in dataset.files] or sorted((sources or {}).items())
    key = repr((NPZ_FORMAT, dataset.name, dataset.format, dataset.classes,
                dict(dataset.options), files))
    return f"{dataset.name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"


def read_verified(path: Path, spec: SourceFile) -> bytes:
    """The bytes of ``path`` to parse (decompressed if so specified), after their checksum (when
    one is known). A mismatch says which is likely wrong: the file, when the checksum is the
    official one; the file or the config entry, when a config gave it."""
    data = path.read_bytes()
    if spec.decompressed and path.name.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as err:
            raise RawDataError(f"{path}: corrupt or truncated gzip file ({err}); replace it "
                               "with the right file and rerun") from err
    if not spec.digest:
        return data
    got = hashlib.new(spec.algorithm, data).hexdigest()
    if got != spec.digest:
        what = "decompressed content" if spec.decompressed else "file"
        if spec.official:
            blame = (f"the file is corrupt, truncated or not the official {spec.name} (the "
                     "checksum is the published one). Replace it and rerun.")
        else:
            blame = ("either the file changed (corrupt, truncated, or replaced) or the checksum "
                     "your config gives for it (data_checksums or datasets.<name>.checksums) is "
                     "wrong: if you replaced the file on purpose, update the checksum; else "
                     "replace the file.")
        raise ChecksumError(f"{path}: {spec.algorithm} of the {what} is {got}, expected "
                            f"{spec.digest}; {blame}")
    return data


def _local_files(dataset: Dataset, source_dir: Path) -> dict[str, Path] | None:
    """The dataset's files in ``source_dir``, or None when any is absent."""
    found: dict[str, Path] = {}
    for f in dataset.files:
        path = next((p for p in f.candidates(source_dir) if p.is_file()), None)
        if path is None:
            return None
        found[f.name] = path
    return found


def local_source_files(dataset: str | Dataset, source_dir: PathLike | None) -> list[str]:
    """The dataset's files in ``source_dir`` when it holds all of them, else an empty list
    (``dataset``: a built-in name, or a `Dataset`)."""
    if source_dir is None:
        return []
    spec = dataset if isinstance(dataset, Dataset) else _builtin(dataset, None)
    found = _local_files(spec, Path(source_dir))
    return [] if found is None else [str(p) for p in found.values()]


def _builtin(dataset: str, specs: Mapping[str, Dataset] | None) -> Dataset:
    """The registry entry of ``dataset`` (``specs`` replaces the registry)."""
    registry = datasets.builtin() if specs is None else specs
    if dataset not in registry:
        raise ValueError(f"unknown raw dataset {dataset!r}; known: {sorted(registry)}")
    return registry[dataset]


def _download(dataset: Dataset, directory: Path) -> dict[str, Path]:
    """Download the dataset's files into ``directory`` with torchvision's helper."""
    from torchvision.datasets.utils import download_url

    paths: dict[str, Path] = {}
    for f in dataset.files:
        if not f.url:
            raise RawDataError(f"{f.name}: no address to download it from ({dataset.key})")
        log.info("downloading %s", f.url)
        download_url(f.url, str(directory), filename=Path(f.name).name, md5=f.download_md5)
        paths[f.name] = directory / Path(f.name).name
    return paths


def _missing_message(dataset: Dataset, source_dir: Path | None, reason: str,
                     download_tried: bool) -> str:
    """Say exactly which files to put where, and which config key names the directory."""
    names = ", ".join(f.name for f in dataset.files)
    where = (f"the directory {source_dir}" if source_dir is not None
             else "a directory of your choice")
    key = dataset.key if dataset.builtin else f"{dataset.key}.path"
    return (f"{dataset.name}: {reason}. Put the file(s) {names} into {where} and set "
            f"{key} to that directory"
            + (f" ({dataset.offline_hint})" if dataset.offline_hint else "")
            + (", or rerun on a machine with internet access." if download_tried
               else ", or allow downloads (allow_download: true) on a machine with internet "
                    "access."))


def read_sources(dataset: Dataset, source_dir: PathLike | None, allow_download: bool,
                 scratch: PathLike) -> tuple[dict[str, bytes], dict[str, str]]:
    """The verified bytes of every file of ``dataset`` (from ``source_dir``, else downloaded
    into a temporary folder under ``scratch``) and the sha256 of each (its provenance)."""
    source = Path(source_dir) if source_dir is not None else None
    local = _local_files(dataset, source) if source is not None else None
    if local is not None:
        log.info("%s: reading local source %s", dataset.name, source)
        payload = {f.name: read_verified(local[f.name], f) for f in dataset.files}
    else:
        if source is not None:
            log.info("%s: %s does not hold every file of the dataset", dataset.name, source)
        if not allow_download or not all(f.url for f in dataset.files):
            reason = ("no local source and downloads are disabled" if not allow_download else
                      "the files are missing and the entry gives no url to download them")
            raise RawDataError(_missing_message(dataset, source, reason, download_tried=False))
        Path(scratch).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f".download-{dataset.name}-", dir=scratch) as tmp:
            try:
                paths = _download(dataset, Path(tmp))
            except Exception as err:  # network errors come in many types; all mean "no file"
                raise RawDataError(_missing_message(
                    dataset, source, f"download failed ({err})", download_tried=True)) from err
            payload = {f.name: read_verified(paths[f.name], f) for f in dataset.files}
    digests = {name: hashlib.sha256(data).hexdigest() for name, data in payload.items()}
    return payload, digests


def fetch(
    dataset: str | Dataset,
    source_dir: PathLike | None,
    allow_download: bool,
    out_npz: PathLike,
    *,
    specs: Mapping[str, Dataset] | None = None,
    checksums: Mapping[str, str] | None = None,
) -> RawImages:
    """Acquire ``dataset`` (local source first, else download), verify, parse, check, write the
    npz (``dataset``: a built-in name, or a `Dataset` such as a user's).

    ``specs`` replaces the registry of built-in datasets; ``checksums`` (file name -> hex
    digest) replaces the expected checksums of some files, e.g. for a repackaged mirror.
    """
    spec = dataset if isinstance(dataset, Dataset) else _builtin(dataset, specs)
    if checksums:
        spec = spec.with_digests(checksums)
    out = Path(out_npz)
    payload, digests = read_sources(spec, source_dir, allow_download, out.parent)
    raw = parse(spec, payload)
    save_npz(raw, out, digests)
    log.info("%s: wrote %s (%d train, %d test images of shape %s, %d classes)", spec.name, out,
             len(raw.y_train), len(raw.y_test), raw.x_train.shape[1:], len(raw.classes))
    return raw
