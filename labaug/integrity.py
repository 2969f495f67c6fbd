"""Content checksums: every result file and checkpoint the workflow reads back carries one.

`content_digest` hashes a nested structure of mappings, sequences, tensors, arrays and scalars
in a canonical order (mapping keys sorted), so the same content always gives the same digest
and a single flipped bit in any value gives another. A checkpoint stores the digest of its own
payload (`seal`, `unseal`); a result netCDF file stores the digest of its variables,
coordinates and attributes as the global attribute `DIGEST_ATTR` (`dataset_digest`), computed
on the file as read back after writing, so a later read recomputes exactly the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

if TYPE_CHECKING:
    import torch

DIGEST_ATTR = "labaug_sha256"
"""The global attribute of a result file that holds `dataset_digest` of the rest of it."""
SEAL = "sha256"
"""The key of a checkpoint's payload that holds `content_digest` of the rest of it."""


class DigestMismatch(ValueError):
    """Content read back differs from the content its checksum was made of."""


def _is_tensor(obj: Any) -> bool:
    """Whether ``obj`` is a torch tensor (without importing torch: a tensor exists only once
    torch is imported, and jobs that never train should not pay for importing it)."""
    torch_module = sys.modules.get("torch")
    return torch_module is not None and isinstance(obj, torch_module.Tensor)


def _feed(h: Any, obj: Any) -> None:
    """Add ``obj`` to the running hash ``h``, tagged by its kind (canonical order)."""
    if isinstance(obj, Mapping):
        h.update(b"{")
        for key in sorted(obj, key=str):
            _feed(h, str(key))
            _feed(h, obj[key])
        h.update(b"}")
    elif isinstance(obj, list | tuple):
        h.update(b"[")
        for value in obj:
            _feed(h, value)
        h.update(b"]")
    elif _is_tensor(obj):
        t = obj.detach().to("cpu").contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(sys.modules["torch"].uint8).numpy().tobytes())
    elif isinstance(obj, np.ndarray | np.generic):
        a = np.ascontiguousarray(obj)
        h.update(f"A{a.dtype.str}{a.shape}".encode())
        if a.dtype.hasobject:
            for value in a.ravel():
                _feed(h, value)
        else:
            h.update(a.tobytes())
    elif isinstance(obj, bytes | bytearray):
        h.update(f"B{len(obj)}:".encode())
        h.update(bytes(obj))
    elif obj is None or isinstance(obj, bool | int | float | str):
        h.update(f"{type(obj).__name__}:{obj!r};".encode())
    else:
        raise TypeError(f"cannot checksum a {type(obj).__name__}")


def content_digest(obj: Any) -> str:
    """The sha256 (hex) of a nested structure's content (`_feed`)."""
    h = hashlib.sha256()
    _feed(h, obj)
    return h.hexdigest()


def seal(payload: Mapping[str, Any]) -> dict[str, Any]:
    """``payload`` with its `content_digest` under `SEAL` (what a checkpoint saves)."""
    body = {k: v for k, v in payload.items() if k != SEAL}
    return {**body, SEAL: content_digest(body)}


def unseal(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A sealed payload without its digest, after checking it; DigestMismatch when the content
    differs from what was sealed, or when there is no digest at all."""
    body = {k: v for k, v in payload.items() if k != SEAL}
    if SEAL not in payload:
        raise DigestMismatch("it carries no checksum (written by an older labaug)")
    got = content_digest(body)
    if got != payload[SEAL]:
        raise DigestMismatch(f"its content's sha256 is {got[:16]}..., the checksum written "
                             f"with it {str(payload[SEAL])[:16]}...")
    return body


def dataset_digest(ds: xr.Dataset) -> str:
    """The sha256 of a Dataset's variables (names, dimensions, values, attributes) and global
    attributes, without `DIGEST_ATTR` itself."""
    h = hashlib.sha256()
    for name in sorted(str(n) for n in ds.variables):
        var = ds.variables[name]
        _feed(h, [name, [str(d) for d in var.dims]])
        _feed(h, np.asarray(var.values))
        _feed(h, {str(k): v for k, v in var.attrs.items()})
    _feed(h, {str(k): v for k, v in ds.attrs.items() if k != DIGEST_ATTR})
    return h.hexdigest()


def check_dataset(ds: xr.Dataset) -> None:
    """Raise DigestMismatch when a Dataset read from a file differs from its `DIGEST_ATTR`
    (a file without one, written by an older labaug, passes)."""
    want = ds.attrs.get(DIGEST_ATTR)
    if want is None:
        return
    got = dataset_digest(ds)
    if got != str(want):
        raise DigestMismatch(f"its content's sha256 is {got[:16]}..., the checksum written "
                             f"with it {str(want)[:16]}...")


def array_digest(*arrays: np.ndarray | torch.Tensor | tuple[str, ...]) -> str:
    """The sha256 of arrays (and tuples of names), in order: a data set's identity."""
    return content_digest(list(arrays))


def canonical_number(value: Any) -> Any:
    """A float that is a whole number as an int (100.0 -> 100), other values unchanged, so that
    the same value written two ways is one value."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


def to_json(obj: Any) -> str:
    """A stable JSON text of a fingerprint-like structure (keys sorted)."""
    return json.dumps(obj, sort_keys=True, default=str)
