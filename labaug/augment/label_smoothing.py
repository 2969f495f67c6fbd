"""Label smoothing (Sec. 2.2): soft targets (1 - a) * onehot + a / K; inputs untouched."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor

from labaug.augment import register
from labaug.augment.base import Augmentation, Draws, as_dtype


def smooth(targets: Tensor, a: Tensor | float, num_classes: int) -> Tensor:
    """(1 - a) * t + a / K for targets t over K classes (binary sweeps: K = 2)."""
    return (1.0 - a) * targets + a / num_classes


@register
class LabelSmoothing(Augmentation):
    """Replace each one-hot target by (1 - a) onehot + a / K."""

    name = "label_smoothing"
    title = "Label smoothing"
    hp_symbol = "a"
    hp_words = "label smoothing"
    color = "tab:orange"
    summary = "label smoothing replaces each one-hot target by (1 - a) onehot + a / K"
    hp_maximum = 1.0

    def apply(self, x: Tensor, t: Tensor, values: Tensor, draws: Draws,
              partner: Tensor | None) -> tuple[Tensor, Tensor]:
        """Inputs (or logits) unchanged; targets smoothed with each model's own a.

        Computed class-first, (K, B, M), and returned as its (B, M, K) view: with K = 2, a
        class-last layout would leave the elementwise kernels a 2-wide inner loop."""
        smoothed = smooth(t.movedim(-1, 0), as_dtype(values, t.dtype), t.shape[-1])
        return x, smoothed.movedim(0, -1)
