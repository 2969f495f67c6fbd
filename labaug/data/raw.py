"""Raw image datasets as DAG roots: data/raw/{dataset}.npz with uint8 images in NCHW order."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labaug.io import atomic_path


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


def load_npz(path: str | os.PathLike[str]) -> RawImages:
    """Read data/raw/{dataset}.npz."""
    with np.load(Path(path), allow_pickle=False) as f:
        return RawImages(
            x_train=f["x_train"], y_train=f["y_train"].astype(np.int64),
            x_test=f["x_test"], y_test=f["y_test"].astype(np.int64),
            classes=tuple(str(c) for c in f["classes"]),
        )


def channel_stats(x_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of uint8 training images (N, C, H, W), in [0, 1] units."""
    x = x_train.astype(np.float64) / 255.0
    return x.mean(axis=(0, 2, 3)), x.std(axis=(0, 2, 3))


def standardize(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Scale uint8 images to [0, 1], then subtract the channel mean and divide by its std."""
    out = (x.astype(np.float32) / 255.0 - mean[None, :, None, None]) / std[None, :, None, None]
    return out.astype(np.float32)
