"""The vectorized linear sweep: a method's whole hyperparameter grid trains as one batched model.

Model m of the sweep is sigma(w_m . x) with no bias (paper Sec. 2.1); the weights of all M
models form one (M, F) tensor, so a step is one (B, F) x (F, M) matmul. Adam is elementwise, so
one Adam over the (M, F) tensor is M independent Adams, and a method's weight decay is a per-model
coupled L2 term added to the gradient (as ``torch.optim.Adam(weight_decay=...)`` does).

Every method goes through the same `labaug.augment` interface. A method that may act on logits
(label smoothing, Mixup, weight decay) is applied to the (B, M) logits, which is exact for a
linear model. A method that must mix inputs (CutMix) builds each model's mixed inputs, a chunk of
models at a time so that no (batch, models, features) tensor exceeds `MIX_BUDGET_BYTES`, and the
chunk's logistic gradient is computed in closed form before the next chunk is built.

Every random draw depends only on the run seed and, for a method's own draws, on the model's
hyperparameter value (one generator per model), so model m follows exactly the trajectory it
would follow if it were trained alone.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from labaug import augment
from labaug.augment import Augmentation, hp_key, partner_permutation
from labaug.config import OptimConfig
from labaug.data import LinearData
from labaug.losses import binary_cross_entropy, binary_targets
from labaug.metrics import error_rate
from labaug.rng import numpy_rng, torch_rng

log = logging.getLogger(__name__)

MIX_BUDGET_BYTES = 64 * 2**20
"""Largest (batch, models, features) tensor that an input-mixing method may build in one piece."""


@dataclass(frozen=True)
class SweepResult:
    """Final state of a sweep: one row per hyperparameter value."""

    hp_values: np.ndarray
    weights: np.ndarray
    train_loss: np.ndarray
    test_error: np.ndarray


class EpochDraws:
    """A method's random draws for a sweep: one generator per model, keyed by (seed, value)."""

    def __init__(self, method: Augmentation, seed: int, scope: tuple[str, ...],
                 values: np.ndarray, per_batch: bool,
                 spatial: tuple[int, int] | None) -> None:
        self.method, self.values, self.per_batch, self.spatial = method, values, per_batch, spatial
        self.rngs = [numpy_rng(seed, *scope, method.name, hp_key(v)) for v in values]
        self.partner_rng = numpy_rng(seed, *scope, "partner") if method.needs_partner else None

    def epoch(self, steps: int, batch: int,
              device: torch.device) -> tuple[dict[str, Tensor], Tensor | None]:
        """This epoch's draws, each (steps, batch or 1, M, ...), and partner keys (steps, batch)."""
        per_model = [self.method.draw(rng, float(v), steps, batch, self.per_batch, self.spatial)
                     for rng, v in zip(self.rngs, self.values, strict=True)]
        draws = {key: torch.as_tensor(np.stack([d[key] for d in per_model], axis=2),
                                      device=device) for key in per_model[0]}
        keys = None
        if self.partner_rng is not None:
            keys = torch.as_tensor(augment.draw_partners(self.partner_rng, steps, batch),
                                   device=device)
        return draws, keys


def step_slice(draws: dict[str, Tensor], step: int, b: int) -> dict[str, Tensor]:
    """One step's draws, each (b or 1, M, ...): the first b examples, or the per-batch draw."""
    return {k: v[step, :b] for k, v in draws.items()}


def mix_chunk(batch: int, n_features: int, itemsize: int) -> int:
    """How many models' mixed inputs fit in `MIX_BUDGET_BYTES` at once (at least one)."""
    return max(1, MIX_BUDGET_BYTES // max(1, batch * n_features * itemsize))


def train_sweep(
    data: LinearData,
    method: str,
    hp_values: Sequence[float] | np.ndarray,
    seed: int,
    optim: OptimConfig,
    *,
    mix_per_batch: bool = False,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> SweepResult:
    """Train one logistic-regression model per hyperparameter value, all in one batched model."""
    aug = augment.get(method)
    hp = np.asarray(hp_values, dtype=np.float64)
    n_models = len(hp)
    dev = torch.device(device)
    x = torch.as_tensor(data.x_train, dtype=dtype, device=dev)
    # Binary targets as two-class one-hot rows (K = 2), the form every method augments.
    t1 = binary_targets(torch.as_tensor(data.y_train, dtype=dtype, device=dev))
    t = torch.stack([1.0 - t1, t1], dim=1)
    n, n_features = x.shape
    values = torch.as_tensor(hp, dtype=dtype, device=dev)
    decay = torch.as_tensor([aug.decay(v) for v in hp], dtype=dtype, device=dev)[:, None]
    shape = data.image_shape
    if aug.needs_spatial and shape is None:
        raise ValueError(f"{method} needs images, but this sweep's data are plain vectors")

    # nn.Linear's default init, U(-1/sqrt(F), 1/sqrt(F)), shared by every model of the sweep.
    bound = 1.0 / math.sqrt(n_features)
    init = torch.rand(n_features, generator=torch_rng(seed, "linear", "init"), dtype=torch.float64)
    w = ((2.0 * init - 1.0) * bound).to(dtype).to(dev).expand(n_models, n_features).clone()
    w.requires_grad_(True)
    opt = torch.optim.Adam([w], lr=optim.lr, betas=optim.betas, eps=optim.eps)

    order_rng = torch_rng(seed, "linear", "order")
    sampler = EpochDraws(aug, seed, ("linear",), hp, mix_per_batch,
                         None if shape is None else (shape[1], shape[2]))
    steps = math.ceil(n / optim.batch_size)
    chunk = mix_chunk(optim.batch_size, n_features, x.element_size())

    epoch_loss = torch.zeros(n_models, dtype=torch.float64, device=dev)
    for epoch in range(optim.epochs):
        order = torch.randperm(n, generator=order_rng).to(dev)
        draws, keys = sampler.epoch(steps, optim.batch_size, dev)
        epoch_loss.zero_()
        for step in range(steps):
            idx = order[step * optim.batch_size:(step + 1) * optim.batch_size]
            b = len(idx)
            xb, tb = x[idx], t[idx].unsqueeze(1)                     # (B, F), (B, 1, 2)
            d = step_slice(draws, step, b)
            partner = None if keys is None else partner_permutation(keys[step], b)
            opt.zero_grad(set_to_none=True)
            if not aug.mixes_inputs:
                logits, targets = aug.apply(xb @ w.T, tb, values, d, partner)  # (B, M)
                data_loss = binary_cross_entropy(
                    logits, targets[..., 1].expand(b, n_models)).mean(dim=0)
                torch.autograd.backward(data_loss.sum())
            else:
                # Mixed inputs (B, m, F) per chunk of models; the logistic gradient in closed
                # form, d loss / d w_m = mean_b (sigma(z_bm) - t_bm) x_bm, without autograd.
                assert shape is not None
                grad = torch.empty_like(w)
                parts = []
                with torch.no_grad():
                    for lo in range(0, n_models, chunk):
                        hi = min(lo + chunk, n_models)
                        dc = {k: v[:, lo:hi] for k, v in d.items()}
                        xm, targets = aug.apply(xb.view(b, 1, *shape), tb, values[lo:hi], dc,
                                                partner)          # (B, m, C, H, W), (B, m, 2)
                        xm = xm.reshape(b, hi - lo, n_features)
                        logits = torch.einsum("bmf,mf->bm", xm, w[lo:hi])
                        target = targets[..., 1].expand(b, hi - lo)
                        parts.append(binary_cross_entropy(logits, target).mean(dim=0))
                        residual = (torch.sigmoid(logits) - target) / b
                        grad[lo:hi] = torch.einsum("bm,bmf->mf", residual, xm)
                w.grad = grad
                data_loss = torch.cat(parts)
            assert w.grad is not None
            w.grad.add_(decay * w.detach())    # coupled weight decay: Adam sees grad + lambda w
            opt.step()
            epoch_loss += data_loss.detach().to(torch.float64) * (b / n)
        if epoch == 0 or (epoch + 1) % max(1, optim.epochs // 10) == 0:
            log.info("%s seed %d epoch %d/%d: train loss %s", method, seed, epoch + 1,
                     optim.epochs, np.array2string(epoch_loss.cpu().numpy(), precision=4,
                                                   max_line_width=10_000))

    weights = w.detach().to(torch.float64).cpu().numpy()
    x_test = torch.as_tensor(data.x_test, dtype=torch.float64)
    return SweepResult(
        hp_values=hp,
        weights=weights,
        train_loss=epoch_loss.cpu().numpy(),
        test_error=error_rate(torch.as_tensor(weights) @ x_test.T,
                              torch.as_tensor(data.y_test, dtype=torch.float64)).numpy(),
    )
