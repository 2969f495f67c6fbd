"""Identifying class channels (Sec. 4.3, Fig. 5): one random vector per class, in TRAIN only.

Each class k of a dataset gets, per seed, one vector v_k ~ N(0, sigma^2 I) with the image's shape
(C, H, W). A training input is concat(standardized image, v_y) along channels; a test input is
concat(standardized image, 0). Only the K vectors are stored: the 2C-channel inputs are built on
the fly, batch by batch, on the training device (`with_class_channels`, `with_zero_channels`).

Subsets (`train_subset`, `test_subset`) keep the FIRST n images of the split: the raw files come
in a fixed order that is already shuffled across classes, and a prefix is the same for every seed.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from labaug.data.images import channel_stats, standardize
from labaug.data.raw import RawImages, load_npz
from labaug.rng import numpy_rng


@dataclass(frozen=True)
class ClassChannelData:
    """Standardized float32 images (N, C, H, W), int64 labels, class vectors (K, C, H, W)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_vectors: np.ndarray
    classes: tuple[str, ...]
    sigma: float

    @property
    def num_classes(self) -> int:
        """Number of classes K (all classes of the dataset are kept)."""
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        """Channels of a model input: the image's C plus C class channels."""
        return 2 * int(self.x_train.shape[1])


def default_sigma(shape: tuple[int, ...]) -> float:
    """1 / sqrt(C * H * W), the reconstructed scale of the class vectors."""
    return 1.0 / math.sqrt(math.prod(shape))


def class_vectors(
    dataset: str, seed: int, num_classes: int, shape: tuple[int, int, int],
    sigma: float | None = None,
) -> np.ndarray:
    """The (K, C, H, W) float32 class vectors of one (dataset, seed); sigma None = the default."""
    scale = default_sigma(shape) if sigma is None else float(sigma)
    rng = numpy_rng(seed, "class_channels", dataset)
    draws = rng.standard_normal(size=(num_classes, *shape))
    return (scale * draws).astype(np.float32)


def _prefix(n_total: int, n: int | None, key: str = "subset") -> int:
    """How many leading images a subset setting keeps; more than the split holds keeps them all,
    with a warning naming ``key`` (the split's size is known only once its raw file is read)."""
    if n is None:
        return n_total
    if int(n) > n_total:
        import logging

        logging.getLogger(__name__).warning(
            "%s = %d asks for more images than the split holds (%d); using all %d", key, n,
            n_total, n_total)
        return n_total
    return int(n)


def class_channel_data(
    raw: RawImages, dataset: str, seed: int, *, sigma: float | None = None,
    train_subset: int | None = None, test_subset: int | None = None,
) -> ClassChannelData:
    """Standardize a raw dataset (train statistics) and draw its class vectors for ``seed``."""
    n_tr = _prefix(len(raw.x_train), train_subset, "resnet.train_subset")
    n_te = _prefix(len(raw.x_test), test_subset, "resnet.test_subset")
    x_train, x_test = raw.x_train[:n_tr], raw.x_test[:n_te]
    mean, std = channel_stats(x_train)
    std = np.where(std > 0, std, 1.0)
    shape = (int(x_train.shape[1]), int(x_train.shape[2]), int(x_train.shape[3]))
    scale = default_sigma(shape) if sigma is None else float(sigma)
    return ClassChannelData(
        x_train=standardize(x_train, mean, std),
        y_train=raw.y_train[:n_tr].astype(np.int64),
        x_test=standardize(x_test, mean, std),
        y_test=raw.y_test[:n_te].astype(np.int64),
        class_vectors=class_vectors(dataset, seed, len(raw.classes), shape, scale),
        classes=raw.classes,
        sigma=scale,
    )


def load_class_channel_data(
    path: str | os.PathLike[str], dataset: str, seed: int, *, sigma: float | None = None,
    train_subset: int | None = None, test_subset: int | None = None,
) -> ClassChannelData:
    """Read data/raw/{dataset}.npz and build its class-channel data for ``seed``."""
    return class_channel_data(load_npz(path), dataset, seed, sigma=sigma,
                              train_subset=train_subset, test_subset=test_subset)


def with_class_channels(images: Tensor, labels: Tensor, vectors: Tensor) -> Tensor:
    """concat(image, v_label) along channels: (B, C, H, W) -> (B, 2C, H, W), on their device."""
    return torch.cat([images, vectors[labels].to(images.dtype)], dim=1)


def with_zero_channels(images: Tensor) -> Tensor:
    """concat(image, 0) along channels: the test set carries no class information."""
    return torch.cat([images, torch.zeros_like(images)], dim=1)
