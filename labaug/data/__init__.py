"""Datasets for the linear experiments: a train/test split of +/-1-labelled feature vectors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LinearData:
    """Binary data for logistic regression: features (N, F) and labels in {-1, +1}."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    image_shape: tuple[int, int, int] | None = None
    """(C, H, W) when the features are a flattened image (channel-major), else None."""
    classes: str = ""
    """What the labels -1 / +1 are, e.g. 'T-shirt/top vs Trouser' (images)."""

    @property
    def n_features(self) -> int:
        """Number of input features F."""
        return int(self.x_train.shape[1])
