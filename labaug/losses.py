"""Label augmentations as soft targets, and the cross-entropies that only ever see soft targets.

Binary models are sigma(w . x) with labels t in {0, 1} (t = (y + 1) / 2). A batched linear
sweep holds M models at once, so logits are (B, M) and every augmentation returns
(logits, soft targets) of that shape. Multi-class models use one-hot targets (B, K).
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


def smooth(targets: Tensor, a: Tensor | float, num_classes: int) -> Tensor:
    """Label smoothing: (1 - a) * t + a / K (binary: K = 2, t in {0, 1})."""
    return (1.0 - a) * targets + a / num_classes


def mix(values: Tensor, lam: Tensor, perm: Tensor) -> Tensor:
    """Mixup along the batch: lam * v + (1 - lam) * v[perm]; lam broadcasts against v."""
    return lam * values + (1.0 - lam) * values[perm]


def binary_targets(labels_pm1: Tensor) -> Tensor:
    """Map labels in {-1, +1} to targets in {0, 1}."""
    return (labels_pm1 + 1.0) * 0.5


def one_hot(labels: Tensor, num_classes: int) -> Tensor:
    """Integer labels (B,) to float one-hot targets (B, K)."""
    return F.one_hot(labels, num_classes).to(torch.float32)
