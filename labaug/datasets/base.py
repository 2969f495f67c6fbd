"""What an image dataset is to the workflow: its files, their format, and the raw arrays they
become.

A `Dataset` names its files (`SourceFile`: a name, where to download it, and the checksum its
content must have, when one is known) and their `Format`; `labaug.datasets.formats` turns their
verified bytes into `RawImages`, the one in-memory form every experiment reads: images
(N, C, H, W) as uint8 (or float32, for a user's float images), int64 labels 0..K-1, and the
class names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

Algorithm = Literal["md5", "sha256"]
Format = Literal["cifar", "idx", "npz", "imagefolder"]
FORMATS: tuple[Format, ...] = ("cifar", "idx", "npz", "imagefolder")
"""The formats a dataset's files may have (`labaug.datasets.formats`)."""


@dataclass(frozen=True)
class RawImages:
    """A whole raw dataset: images (N, C, H, W) uint8 or float32, int64 labels, class names."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]


class RawDataError(RuntimeError):
    """A raw dataset could not be acquired: missing, corrupt, or not the files it should be."""


class ChecksumError(RawDataError):
    """A source file's checksum differs from the one it should have."""


@dataclass(frozen=True)
class SourceFile:
    """One file of a dataset: its name (relative to the dataset's directory), where to download
    it, and its checksum.

    ``digest`` is the ``algorithm`` hex digest of the file's bytes, or of its decompressed
    bytes when ``decompressed`` is true (then an already-gunzipped copy, named without
    ``.gz``, is accepted too); empty when no checksum is known (a user's own files: their
    checksums are recorded when they are read). ``download_md5`` is the md5 of the downloaded
    bytes. ``official`` says whether the checksum is the published one or one a config gave.
    """

    name: str
    url: str
    digest: str
    algorithm: Algorithm = "md5"
    decompressed: bool = False
    download_md5: str | None = None
    official: bool = True

    def candidates(self, directory: Path) -> tuple[Path, ...]:
        """Paths under ``directory`` this file may have."""
        paths = [directory / self.name]
        if self.decompressed and self.name.endswith(".gz"):
            paths.append(directory / self.name[: -len(".gz")])
        return tuple(paths)


@dataclass(frozen=True)
class Dataset:
    """One image dataset: a built-in one (`labaug.datasets.builtin`) or a user's
    (`labaug.datasets.user`, from a config's ``datasets.<name>`` entry).

    ``files`` are the files to verify and read; a user dataset without published files lists
    them from ``path`` when it is prepared (`labaug.datasets.user.files_of`).
    ``num_classes`` and ``classes`` are known in advance for a built-in dataset, from the data
    for a user's (unless the entry names the classes). ``options`` holds what the format needs
    (member names of a CIFAR archive, the idx file names, an npz's image layout).
    """

    name: str
    title: str
    format: Format
    files: tuple[SourceFile, ...] = ()
    num_classes: int | None = None
    classes: tuple[str, ...] | None = None
    path: str | None = None
    url: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    offline_hint: str = ""
    builtin: bool = True

    @property
    def key(self) -> str:
        """The config key that declares this dataset (for error messages)."""
        return f"data_sources.{self.name}" if self.builtin else f"datasets.{self.name}"

    def with_digests(self, digests: Mapping[str, str]) -> Dataset:
        """The same dataset expecting other checksums (file name -> hex digest): a mirror's, a
        config's; such checksums are not official."""
        unknown = set(digests) - {f.name for f in self.files}
        if unknown:
            raise KeyError(f"{self.name} has no files named {sorted(unknown)}")
        files = tuple(
            SourceFile(f.name, f.url, digests.get(f.name, f.digest),
                       algorithm_of(digests[f.name]) if f.name in digests else f.algorithm,
                       f.decompressed, None if f.name in digests else f.download_md5,
                       official=f.official and f.name not in digests)
            for f in self.files
        )
        return replace(self, files=files)


def algorithm_of(digest: str) -> Algorithm:
    """The hash a hex digest comes from: md5 (32 digits) or sha256 (64)."""
    if len(digest) == 32:
        return "md5"
    if len(digest) == 64:
        return "sha256"
    raise ValueError(f"{digest!r} is neither an md5 (32 hex digits) nor a sha256 (64)")
