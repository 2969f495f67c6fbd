"""Explicit random generators seeded from (seed, purpose); nothing reads global RNG state."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def derive_seed(seed: int, *purpose: str | int) -> int:
    """A 63-bit integer derived deterministically from a run seed and a purpose."""
    key = "/".join([str(seed), *(str(p) for p in purpose)])
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def numpy_rng(seed: int, *purpose: str | int) -> np.random.Generator:
    """A numpy Generator for one purpose of one run."""
    return np.random.default_rng(derive_seed(seed, *purpose))


def torch_rng(seed: int, *purpose: str | int, device: str = "cpu") -> torch.Generator:
    """A torch Generator (on ``device``) for one purpose of one run."""
    import torch

    gen = torch.Generator(device=device)
    gen.manual_seed(derive_seed(seed, *purpose))
    return gen
