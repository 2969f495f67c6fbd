"""The vectorized linear sweep: a method's whole hyperparameter grid trains as one batched model.

Model m of the sweep is sigma(w_m . x) with no bias (paper Sec. 2.1); the weights of all M
models form one (M, F) tensor, so a step is one (B, F) x (F, M) matmul. Adam is elementwise, so
one Adam over the (M, F) tensor is M independent Adams. For Mixup the inputs are never mixed:
w . (l x_i + (1 - l) x_j) = l (w . x_i) + (1 - l)(w . x_j), so the logits are mixed instead and
autograd scatters the gradient back the same way. Every random draw depends only on the run
seed and, for Mixup weights, on the model's own alpha, so model m follows exactly the trajectory
it would follow if it were trained alone.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from labaug.config import Method, OptimConfig
from labaug.data import LinearData
from labaug.losses import binary_cross_entropy, binary_targets, mix, smooth, weight_decay_penalty
from labaug.metrics import error_rate
from labaug.rng import numpy_rng, torch_rng

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepResult:
    """Final state of a sweep: one row per hyperparameter value."""

    hp_values: np.ndarray
    weights: np.ndarray
    train_loss: np.ndarray
    test_error: np.ndarray


def _hp_key(value: float) -> str:
    """A seed purpose that names a hyperparameter value exactly."""
    return f"{float(value):.17g}"


class _MixupWeights:
    """Per-model Beta(alpha, alpha) draws, one generator per model keyed by (seed, alpha)."""

    def __init__(self, seed: int, alphas: np.ndarray, per_batch: bool) -> None:
        self.alphas = alphas
        self.per_batch = per_batch
        self.rngs = [numpy_rng(seed, "linear", "mixup_weight", _hp_key(a)) for a in alphas]

    def epoch(self, steps: int, batch: int) -> np.ndarray:
        """Mixing weights for one epoch, shape (steps, batch or 1, M); alpha = 0 gives 1 (ERM)."""
        width = 1 if self.per_batch else batch
        out = np.ones((steps, width, len(self.alphas)))
        for m, (alpha, rng) in enumerate(zip(self.alphas, self.rngs, strict=True)):
            if alpha > 0:
                out[:, :, m] = rng.beta(alpha, alpha, size=(steps, width))
        return out


def train_sweep(
    data: LinearData,
    method: Method,
    hp_values: Sequence[float] | np.ndarray,
    seed: int,
    optim: OptimConfig,
    *,
    mixup_per_batch: bool = False,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> SweepResult:
    """Train one logistic-regression model per hyperparameter value, all in one batched model."""
    hp = np.asarray(hp_values, dtype=np.float64)
    n_models = len(hp)
    dev = torch.device(device)
    x = torch.as_tensor(data.x_train, dtype=dtype, device=dev)
    t = binary_targets(torch.as_tensor(data.y_train, dtype=dtype, device=dev))
    n, n_features = x.shape
    hp_t = torch.as_tensor(hp, dtype=dtype, device=dev)

    # nn.Linear's default init, U(-1/sqrt(F), 1/sqrt(F)), shared by every model of the sweep.
    bound = 1.0 / math.sqrt(n_features)
    init = torch.rand(n_features, generator=torch_rng(seed, "linear", "init"), dtype=torch.float64)
    w = ((2.0 * init - 1.0) * bound).to(dtype).to(dev).expand(n_models, n_features).clone()
    w.requires_grad_(True)
    opt = torch.optim.Adam([w], lr=optim.lr, betas=optim.betas, eps=optim.eps)

    order_rng = torch_rng(seed, "linear", "order")
    perm_rng = torch_rng(seed, "linear", "mixup_partner")
    mixup = _MixupWeights(seed, hp, mixup_per_batch) if method == "mixup" else None
    steps = math.ceil(n / optim.batch_size)
    decay = hp_t if method == "weight_decay" else None

    epoch_loss = torch.zeros(n_models, dtype=torch.float64, device=dev)
    for epoch in range(optim.epochs):
        order = torch.randperm(n, generator=order_rng).to(dev)
        lam_epoch = None
        if mixup is not None:
            lam_epoch = torch.as_tensor(mixup.epoch(steps, optim.batch_size), dtype=dtype,
                                        device=dev)
        epoch_loss.zero_()
        for step in range(steps):
            idx = order[step * optim.batch_size:(step + 1) * optim.batch_size]
            b = len(idx)
            logits = x[idx] @ w.T                                   # (B, M)
            targets = t[idx].unsqueeze(1).expand(b, n_models)       # (B, M)
            if method == "label_smoothing":
                targets = smooth(targets, hp_t, 2)
            elif lam_epoch is not None:
                perm = torch.randperm(b, generator=perm_rng).to(dev)
                lam = lam_epoch[step, :b]
                logits, targets = mix(logits, lam, perm), mix(targets, lam, perm)
            data_loss = binary_cross_entropy(logits, targets).mean(dim=0)  # (M,)
            loss = data_loss.sum()
            if decay is not None:
                loss = loss + weight_decay_penalty(w, decay).sum()
            opt.zero_grad(set_to_none=True)
            torch.autograd.backward(loss)
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
