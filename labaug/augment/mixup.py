"""Mixup (Zhang et al.): convex combinations of example pairs and of their targets.

The mixing weight lambda ~ Beta(alpha, alpha) is drawn per example (or per batch); alpha = 0
means lambda = 1, i.e. plain training (ERM). The partner of each example comes from a drawn
permutation of the batch. Mixing is linear, so a linear model can mix logits instead of inputs.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from torch import Tensor

from labaug.augment import register
from labaug.augment.base import Augmentation, Draws, along, as_dtype


def mix(values: Tensor, lam: Tensor, partner: Tensor, dim: int = 0) -> Tensor:
    """lam * v + (1 - lam) * v[partner] along the batch axis ``dim`` (one lerp); lam broadcasts
    against v."""
    import torch

    return torch.lerp(values.index_select(dim, partner), values, lam)


def mix_targets(t: Tensor, lam: Tensor, partner: Tensor) -> Tensor:
    """`mix` of soft targets (B, M or 1, K) with weights (B or 1, M), computed class-first.

    The arithmetic runs on (K, B, M) and the result is its (B, M, K) view: with K = 2 classes,
    a class-last layout would leave every elementwise kernel a 2-wide inner loop (3x slower).
    """
    return mix(t.movedim(-1, 0), as_dtype(lam, t.dtype).unsqueeze(0), partner, dim=1).movedim(0, -1)


def mix_transpose(grad: Tensor, lam: Tensor, partner: Tensor) -> Tensor:
    """The adjoint of `mix` along the batch: lam * g, plus (1 - lam) * g sent back to partners."""
    own = lam * grad
    return own.index_add_(0, partner, grad - own)


def devroye_beta(u: Tensor, v: Tensor, alpha: float) -> Tensor:
    """Beta(alpha, alpha) variates from two independent U[0, 1) tensors, exact in law for alpha > 0.

    q = ((1 - U)^(-1 / alpha) - 1) cos^2(pi V) and s = sqrt(1 + 1 / q) give
    X = 1/2 + sign(cos(pi V)) / (2 s) (L. Devroye, "Random variate generation in one line of code",
    1996). Element by element (a value depends only on its own two uniforms) and continuous in
    alpha, so one pair of uniforms serves every alpha (common random numbers). Consumes u and v.
    """
    import torch

    c = v.mul_(math.pi).cos_()
    q = u.neg_().add_(1.0).log_().mul_(-1.0 / alpha).exp_().sub_(1.0).mul_(c).mul_(c)
    s = q.reciprocal_().add_(1.0).sqrt_()
    return torch.copysign(s.reciprocal_().mul_(0.5), c).add_(0.5)


def symmetric_beta(rng: np.random.Generator, alpha: float, size: tuple[int, ...]) -> np.ndarray:
    """Beta(alpha, alpha) draws (float32) of ``size``: `devroye_beta` of two float32 uniforms.

    Two uniforms and a dozen in-place operations per draw, about six times faster than numpy's
    ``Generator.beta``, which matters: a Mixup sweep draws 20 x 50,000 weights an epoch.
    """
    import torch

    u = torch.from_numpy(rng.random(size=(2, *size), dtype=np.float32))
    return devroye_beta(u[0], u[1], alpha).numpy()


def beta_weights(rng: np.random.Generator, alpha: float, size: tuple[int, ...]) -> np.ndarray:
    """Beta(alpha, alpha) draws of ``size``; alpha = 0 gives ones (no mixing) and draws nothing."""
    if alpha <= 0:
        return np.ones(size, dtype=np.float32)
    return symmetric_beta(rng, alpha, size)


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
        return mix(x, along(as_dtype(lam, x.dtype), x.ndim), partner), mix_targets(t, lam, partner)

    def logit_grad(self, grad: Tensor, values: Tensor, draws: Draws,
                   partner: Tensor | None) -> Tensor:
        """Each mixed logit's gradient goes back to the example (lambda) and its partner."""
        assert partner is not None
        return mix_transpose(grad, along(as_dtype(draws["lam"], grad.dtype), grad.ndim), partner)
