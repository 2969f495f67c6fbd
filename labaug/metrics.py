"""What the paper measures: weight norms per feature block, the pixel ratio, test error."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def block_norm(weights: np.ndarray, block: slice) -> np.ndarray:
    """Euclidean norm of each model's weights on a block of features; weights (..., F)."""
    return np.asarray(np.linalg.norm(weights[..., block], axis=-1))


def pixel_ratio(weights: np.ndarray) -> np.ndarray:
    """|w_1| / ||w_2:||, the identifying pixel's weight against the rest of the image (Fig. 3)."""
    ratio: np.ndarray = np.abs(weights[..., 0]) / np.linalg.norm(weights[..., 1:], axis=-1)
    return ratio


def error_rate(logits: Tensor, labels_pm1: Tensor) -> Tensor:
    """Fraction of wrong signs per model; logits (M, N), labels (N,) in {-1, +1}."""
    return (torch.sign(logits) != labels_pm1).to(torch.float64).mean(dim=-1)
