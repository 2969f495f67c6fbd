"""A researcher's own dataset: one ``datasets.<name>`` entry in any config file, no package edit.

    datasets:
      rotated:
        format: idx                  # npz, imagefolder, idx or cifar (labaug.datasets.formats)
        path: /data/rotated-fmnist   # the file (npz, cifar archive) or directory
        classes: [a, b, c]           # optional: names (else from the data)
        url: https://...             # optional: where a missing npz or archive is downloaded
        checksums: {file: sha256}    # optional: what the files must hold
        layout: NHWC                 # optional (npz): where the channels are, if ambiguous

`user_dataset` turns an entry into a `Dataset`; `files_of` lists the files it consists of
(inputs of the rule that prepares it, so a changed file reruns it); `inspect` reads no more
than it needs to list its classes, so a bad entry or class pair is refused before any job
runs (`check_datasets`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labaug.datasets.base import (
    FORMATS,
    Dataset,
    RawDataError,
    SourceFile,
    algorithm_of,
)
from labaug.datasets.formats import (
    IDX_FILES,
    LAYOUTS,
    NPZ_KEYS,
    default_classes,
    folder_classes,
    folder_images,
    parse_idx,
)

NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def user_dataset(name: str, entry: Mapping[str, Any]) -> Dataset:
    """The `Dataset` of a config entry ``datasets.<name>`` (keys checked by the schema)."""
    fmt = str(entry["format"])
    if fmt not in FORMATS:
        raise RawDataError(f"datasets.{name}.format = {fmt!r} is not a format; choose from "
                           f"{', '.join(FORMATS)}")
    options: dict[str, Any] = {}
    if entry.get("layout"):
        options["layout"] = str(entry["layout"])
    classes = tuple(str(c) for c in entry["classes"]) if entry.get("classes") else None
    return Dataset(name=name, title=name, format=fmt,
                   num_classes=len(classes) if classes else None, classes=classes,
                   path=str(entry["path"]), url=entry.get("url"), options=options,
                   builtin=False)


def files_of(dataset: Dataset, checksums: Mapping[str, str] | None = None
             ) -> tuple[SourceFile, ...]:
    """The files of a user dataset, found under its path (a missing path or split raises,
    naming the key), each with the checksum the entry gives for it, if any."""
    key, root = dataset.key, Path(str(dataset.path))
    checksums = dict(checksums or {})
    if dataset.format in ("npz", "cifar"):
        if root.is_dir():
            found = sorted(root.glob("*.npz" if dataset.format == "npz" else "*.tar.gz"))
            if len(found) != 1:
                kind = "npz files" if dataset.format == "npz" else "tar.gz archives"
                raise RawDataError(f"{key}.path = {root} is a directory holding {len(found)} "
                                   f"{kind}; name the file itself")
            names = [found[0].name]
        elif root.is_file() or dataset.url:
            names = [root.name]
        else:
            raise RawDataError(f"{key}.path = {root} does not exist")
    elif dataset.format == "idx":
        if not root.is_dir():
            raise RawDataError(f"{key}.path = {root} is not a directory (an idx dataset is a "
                               f"directory holding {', '.join(IDX_FILES)}, each gzipped or not)")
        names = []
        for stem in IDX_FILES:
            have = [n for n in (stem, f"{stem}.gz") if (root / n).is_file()]
            if not have:
                raise RawDataError(f"{key}: {root} lacks {stem} (or {stem}.gz)")
            names.append(have[-1])
    else:  # imagefolder
        folder_classes(root, key)
        for split in ("train", "test"):
            if not (root / split).is_dir():
                raise RawDataError(f"{key}: {root / split} is missing (an imagefolder dataset "
                                   "has train/<class>/ and test/<class>/ folders of images)")
        names = [str(p.relative_to(root)) for split in ("train", "test")
                 for p in folder_images(root, split)]
    unknown = sorted(set(checksums) - set(names))
    if unknown:
        raise RawDataError(f"{key}.checksums names files that are not part of the dataset: "
                           f"{', '.join(unknown)}")
    return tuple(SourceFile(n, dataset.url or "", checksums.get(n, ""),
                            algorithm_of(checksums[n]) if n in checksums else "sha256",
                            decompressed=n.endswith(".gz") and dataset.format == "idx",
                            official=False)
                 for n in names)


def directory_of(dataset: Dataset) -> Path:
    """The directory a user dataset's file names are relative to."""
    root = Path(str(dataset.path))
    return root if root.is_dir() else root.parent


def inspect(dataset: Dataset) -> tuple[str, ...]:
    """A user dataset's class names, reading as little as possible (the labels, the folder
    names, the archive's meta); its files' existence and layout are checked on the way."""
    if dataset.classes:
        files_of(dataset)
        return dataset.classes
    key, root = dataset.key, Path(str(dataset.path))
    files = files_of(dataset)
    if dataset.format == "imagefolder":
        return folder_classes(root, key)
    if dataset.format == "npz":
        path = directory_of(dataset) / files[0].name
        if not path.exists():
            return ()     # to be downloaded: its classes are known once it is read
        try:
            with np.load(path, allow_pickle=False) as f:
                missing = [k for k in NPZ_KEYS if k not in f.files]
                if missing:
                    raise RawDataError(f"{key}: {path} lacks {', '.join(missing)} (an npz "
                                       "dataset holds x_train, y_train, x_test, y_test)")
                if "classes" in f.files:
                    return tuple(str(c) for c in f["classes"])
                return default_classes(np.asarray(f["y_train"]), np.asarray(f["y_test"]))
        except RawDataError:
            raise
        except Exception as err:  # noqa: BLE001 - a damaged npz fails in many types
            raise RawDataError(f"{key}: cannot read {path} as an npz ({err})") from err
    if dataset.format == "idx":
        import gzip

        labels = []
        for f in (files[1], files[3]):
            data = (directory_of(dataset) / f.name).read_bytes()
            labels.append(parse_idx(gzip.decompress(data) if f.name.endswith(".gz") else data,
                                    f.name))
        return default_classes(*labels)
    return ()     # a CIFAR archive: its class names are in its meta, read when it is prepared


def check_datasets(config: Mapping[str, Any], used: Sequence[str]) -> list[str]:
    """Every problem with the user datasets among ``used`` and their class pairs, one line each
    naming the key (the workflow calls this before any job runs)."""
    problems = []
    entries = config.get("datasets") or {}
    pairs = (config.get("image") or {}).get("pairs") or {}
    for name, entry in entries.items():
        if not NAME.match(str(name)):
            problems.append(f"datasets.{name}: a dataset name is lower-case letters, digits and "
                            "_, starting with a letter")
            continue
        if name not in used:
            continue
        try:
            classes = inspect(user_dataset(name, entry))
        except RawDataError as err:
            problems.append(str(err))
            continue
        if classes and len(classes) < 2:
            problems.append(f"datasets.{name}: {len(classes)} class ({', '.join(classes)}); a "
                            "dataset needs at least 2")
            continue
        pair = pairs.get(name)
        if classes and pair is not None and any(int(c) >= len(classes) for c in pair):
            problems.append(f"image.pairs.{name} = {list(pair)} names a class that {name} does "
                            f"not have; its {len(classes)} classes are 0..{len(classes) - 1} "
                            f"({', '.join(classes[:10])}{', ...' if len(classes) > 10 else ''})")
    return problems


__all__ = ["LAYOUTS", "check_datasets", "directory_of", "files_of", "inspect",
           "user_dataset"]
