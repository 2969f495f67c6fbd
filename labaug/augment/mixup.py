"""Mixup (Zhang et al.): convex combinations of example pairs and of their targets.

The mixing weight lambda ~ Beta(alpha, alpha) is drawn per example (or per batch); alpha = 0
means lambda = 1, i.e. plain training (ERM). The partner of each example comes from a drawn
permutation of the batch. Mixing is linear, so a linear model can mix logits instead of inputs.
"""

from __future__ import annotations

import numpy as np
from torch import Tensor

from labaug.augment import register
from labaug.augment.base import Augmentation, Draws, along


def mix(values: Tensor, lam: Tensor, partner: Tensor) -> Tensor:
    """lam * v + (1 - lam) * v[partner] along the batch; lam broadcasts against v."""
    return lam * values + (1.0 - lam) * values[partner]


def beta_weights(rng: np.random.Generator, alpha: float, size: tuple[int, ...]) -> np.ndarray:
    """Beta(alpha, alpha) draws of ``size``; alpha = 0 gives ones (no mixing) and draws nothing."""
    if alpha <= 0:
        return np.ones(size)
    return rng.beta(alpha, alpha, size=size)


@register
class Mixup(Augmentation):
    """Mix each example (inputs and targets) with a partner, weight lambda ~ Beta(alpha, alpha)."""

    name = "mixup"
    title = "Mixup"
    hp_symbol = r"\alpha"
    hp_words = "Mixup Beta parameter"
    color = "tab:green"
    summary = ("Mixup replaces each example and its target by lambda * own + (1 - lambda) * "
               "partner's, lambda ~ Beta(alpha, alpha)")
    needs_partner = True

    def draw(self, rng: np.random.Generator, value: float, steps: int, batch: int,
             per_batch: bool, spatial: tuple[int, int] | None) -> dict[str, np.ndarray]:
        """The epoch's mixing weights, (steps, batch) or (steps, 1) when per batch."""
        return {"lam": beta_weights(rng, value, (steps, 1 if per_batch else batch))}

    def apply(self, x: Tensor, t: Tensor, values: Tensor, draws: Draws,
              partner: Tensor | None) -> tuple[Tensor, Tensor]:
        """Mix inputs (or logits) and targets with the same weights and partners."""
        assert partner is not None
        lam = draws["lam"]
        return (mix(x, along(lam.to(x.dtype), x.ndim), partner),
                mix(t, along(lam.to(t.dtype), t.ndim), partner))
