"""The cross-entropies, which only ever see soft targets (the augmentations are labaug.augment).

Binary models are sigma(w . x) with labels t in {0, 1} (t = (y + 1) / 2); a batched linear
sweep holds M models at once, so its logits and targets are (B, M). Multi-class models use
one-hot targets (B, K).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def binary_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """Elementwise logistic loss -t log sigma(z) - (1 - t) log(1 - sigma(z)), soft t allowed."""
    return F.binary_cross_entropy_with_logits(logits, targets, reduction="none")


def soft_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean over the batch of -sum_k q_k log softmax(z)_k for soft targets q (B, K)."""
    return -(targets * F.log_softmax(logits, dim=-1)).sum(dim=-1).mean()


def weight_decay_penalty(weights: Tensor, lam: Tensor) -> Tensor:
    """lam/2 ||w||^2 per model; its gradient lam*w is Adam's coupled weight decay."""
    return 0.5 * lam * (weights * weights).sum(dim=-1)


def binary_targets(labels_pm1: Tensor) -> Tensor:
    """Map labels in {-1, +1} to targets in {0, 1}."""
    return (labels_pm1 + 1.0) * 0.5


def one_hot(labels: Tensor, num_classes: int) -> Tensor:
    """Integer labels (B,) to float one-hot targets (B, K)."""
    return F.one_hot(labels, num_classes).to(torch.float32)
