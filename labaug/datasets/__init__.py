"""Image datasets, and the one registry of them that every layer reads.

The built-in datasets are one module each in this package (CIFAR-10, CIFAR-100, Fashion-MNIST),
registered with their official files and checksums; a researcher's own dataset is one entry
``datasets.<name>`` in any config file (`labaug.datasets.user`), no package edit. `resolve`
gives both for a config; the schema, the workflow's rules, data preparation, figures and tests
read the names, titles and files from here.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from typing import Any

from labaug.datasets.base import (
    FORMATS,
    Dataset,
    RawDataError,
    RawImages,
    SourceFile,
)

__all__ = ["FORMATS", "Dataset", "RawDataError", "RawImages", "SourceFile", "builtin", "get",
           "names", "register", "resolve", "title"]

_REGISTRY: dict[str, Dataset] = {}
_NOT_DATASETS = {"base", "formats", "user"}


def register(dataset: Dataset) -> Dataset:
    """Make a built-in dataset known to every layer under its name."""
    existing = _REGISTRY.get(dataset.name)
    if existing is not None and existing != dataset:
        raise ValueError(f"dataset {dataset.name!r} is already registered")
    _REGISTRY[dataset.name] = dataset
    return dataset


def _discover() -> None:
    """Import every dataset module of this package (each registers its dataset)."""
    for info in pkgutil.iter_modules(__path__):
        if info.name not in _NOT_DATASETS:
            importlib.import_module(f"{__name__}.{info.name}")


def builtin() -> dict[str, Dataset]:
    """The built-in datasets by name, in registration order (CIFAR-10, CIFAR-100, ...)."""
    return dict(_REGISTRY)


def resolve(config: Mapping[str, Any] | None = None) -> dict[str, Dataset]:
    """Every dataset a config can name: the built-in ones and its ``datasets`` entries."""
    from labaug.datasets.user import user_dataset

    out = builtin()
    for name, entry in ((config or {}).get("datasets") or {}).items():
        out[str(name)] = user_dataset(str(name), entry)
    return out


def names(config: Mapping[str, Any] | None = None) -> tuple[str, ...]:
    """The names of every dataset a config can name (built-in first)."""
    out = list(_REGISTRY)
    out += [str(n) for n in ((config or {}).get("datasets") or {}) if n not in _REGISTRY]
    return tuple(out)


def get(name: str, config: Mapping[str, Any] | None = None) -> Dataset:
    """The dataset ``name`` (a built-in one, or an entry of ``config``)."""
    found = resolve(config) if config and name not in _REGISTRY else _REGISTRY
    if name not in found:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(names(config))} (declare "
                         "your own under datasets.<name> in a config file)")
    return found[name]


def title(name: str, config: Mapping[str, Any] | None = None) -> str:
    """The name figures print for ``name`` (its name when unknown)."""
    try:
        return get(name, config).title
    except (ValueError, RawDataError):
        return name


_discover()
