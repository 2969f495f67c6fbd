"""Models of the class-channel runs, and the one registry of them that every layer reads.

Every module of this package (but ``base`` and ``nets``, the PyTorch code of the networks)
defines one model and registers it, as
`labaug.augment` does for methods; config (``resnet.models``), schema, job expansion, trainer,
results (the ``model`` dimension), figures, captions and tests all read the list from here.
Adding a model is one module here and its tests.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeVar

from labaug.models.base import Model, Setting

if TYPE_CHECKING:
    import torch

    from labaug.models.nets import ClassChannelNet

__all__ = ["Model", "Setting", "build_model", "describe_model", "get", "names", "register",
           "registry", "title"]

_REGISTRY: dict[str, Model] = {}

M = TypeVar("M", bound=type[Model])


def register(cls: M) -> M:
    """Class decorator: make a model known to every layer under ``cls.name``."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"{cls.__qualname__}.name must be a Python identifier, got {name!r}")
    existing = _REGISTRY.get(name)
    if existing is not None and (type(existing).__module__, type(existing).__qualname__) != (
            cls.__module__, cls.__qualname__):
        raise ValueError(f"model {name!r} is already registered by "
                         f"{type(existing).__module__}.{type(existing).__qualname__}")
    for attr in ("title", "summary"):
        if not isinstance(getattr(cls, attr, None), str):
            raise ValueError(f"model {name!r} must set the class attribute {attr}")
    _REGISTRY[name] = cls()
    return cls


def _discover() -> None:
    """Import every model module of this package (each registers itself)."""
    for info in pkgutil.iter_modules(__path__):
        if info.name not in ("base", "nets"):
            importlib.import_module(f"{__name__}.{info.name}")


def registry() -> dict[str, Model]:
    """Every registered model by name, in alphabetical order (config orders them for plots)."""
    return {name: _REGISTRY[name] for name in sorted(_REGISTRY)}


def names() -> tuple[str, ...]:
    """The registered model names, in alphabetical order."""
    return tuple(sorted(_REGISTRY))


def get(name: str) -> Model:
    """The model registered as ``name``; the error names the config key and the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r} (config resnet.models); choose from "
                         f"{', '.join(names())}") from None


def title(name: str) -> str:
    """A model's title for figures and tables; its name if it is not registered here."""
    return _REGISTRY[name].title if name in _REGISTRY else name


def build_model(name: str, input_shape: tuple[int, int, int], num_classes: int, width: int,
                hidden: Sequence[int], generator: torch.Generator,
                device: str | torch.device = "cpu") -> ClassChannelNet:
    """A freshly initialized network of the model ``name`` (`Model.build`)."""
    return get(name).build(input_shape, num_classes, width, hidden, generator, device)


def describe_model(name: str, width: int, hidden: Sequence[int]) -> str:
    """The model in words with its size (`Model.describe`)."""
    return get(name).describe(width, hidden)


_discover()
