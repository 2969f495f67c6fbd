"""Label augmentations and the one registry of methods that every layer reads.

Every module of this package (but ``base`` and ``draws``, the per-epoch draws both trainers
share) defines one method and registers it; the trainers,
config, schema, workflow, figures, captions and tests all read the list from here. Adding a
method is one module here, its grid and ResNet value in ``config.yaml``, and its tests.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TypeVar

from labaug.augment.base import (
    EXPERIMENTS,
    Augmentation,
    Draws,
    Experiment,
    along,
    as_dtype,
    draw_partners,
    epoch_partners,
    hp_key,
    partner_permutation,
)

__all__ = ["EXPERIMENTS", "Augmentation", "Draws", "Experiment", "along", "as_dtype",
           "draw_partners", "epoch_partners", "for_experiment", "get", "hp_key", "names",
           "partner_permutation", "register", "registry", "run_label", "swept", "title"]

_REGISTRY: dict[str, Augmentation] = {}

A = TypeVar("A", bound=type[Augmentation])


def register(cls: A) -> A:
    """Class decorator: make a method known to every layer under ``cls.name``."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"{cls.__qualname__}.name must be a Python identifier, got {name!r}")
    existing = _REGISTRY.get(name)
    same = existing is not None and (type(existing).__module__, type(existing).__qualname__) \
        == (cls.__module__, cls.__qualname__)
    if existing is not None and not same:
        raise ValueError(f"label augmentation {name!r} is already registered by "
                         f"{type(existing).__module__}.{type(existing).__qualname__}")
    for attr in ("title", "hp_symbol", "hp_words", "color", "summary"):
        if not isinstance(getattr(cls, attr, None), str):
            raise ValueError(f"label augmentation {name!r} must set the class attribute {attr}")
    unknown = set(cls.experiments) - set(EXPERIMENTS)
    if unknown:
        raise ValueError(f"label augmentation {name!r}: unknown experiments {sorted(unknown)}; "
                         f"choose from {', '.join(EXPERIMENTS)}")
    if not cls.has_hp and set(cls.experiments) != {"class_channels"}:
        raise ValueError(f"label augmentation {name!r} has no hyperparameter, so it has no grid "
                         "to sweep: it can run only on class_channels")
    _REGISTRY[name] = cls()
    return cls


def _discover() -> None:
    """Import every method module of this package (each registers itself)."""
    for info in pkgutil.iter_modules(__path__):
        if info.name not in ("base", "draws"):
            importlib.import_module(f"{__name__}.{info.name}")


def registry() -> dict[str, Augmentation]:
    """Every registered method by name, in alphabetical order (config orders them for plots)."""
    return {name: _REGISTRY[name] for name in sorted(_REGISTRY)}


def names() -> tuple[str, ...]:
    """The registered method names, in alphabetical order."""
    return tuple(sorted(_REGISTRY))


def get(name: str) -> Augmentation:
    """The method registered as ``name``; the error lists the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown label augmentation {name!r}; registered: "
                       f"{', '.join(_REGISTRY)}") from None


def title(name: str) -> str:
    """A method's title for figures and tables; its name if it is not registered here."""
    return _REGISTRY[name].title if name in _REGISTRY else name


def run_label(name: str, value: float | None = None, math: bool = False) -> str:
    """A method with its value, for tables and legends: ``Weight decay (lambda = 0.0005)``, or
    with ``math`` a matplotlib mathtext symbol; the title alone for a method without a
    hyperparameter (ERM) or without a value."""
    method = _REGISTRY.get(name)
    if method is None or not method.has_hp or value is None or value != value:
        return title(name)
    symbol = f"${method.hp_symbol}$" if math else method.hp_symbol.lstrip(chr(92))
    return f"{method.title} ({symbol} = {value:g})"


def swept(name: str) -> bool:
    """Whether ``name`` has a grid to sweep (``grids.<name>``): it has a hyperparameter and a
    linear experiment (synthetic or binary images)."""
    method = get(name)
    return method.has_hp and bool(set(method.experiments) - {"class_channels"})


def for_experiment(methods: tuple[str, ...] | list[str], experiment: Experiment) -> list[str]:
    """The methods of ``methods`` (config order) that apply to ``experiment``."""
    return [m for m in methods if experiment in get(m).experiments]


_discover()
