"""The vectorized linear sweep: a method's whole hyperparameter grid trains as one batched model.

Model m of the sweep is sigma(w_m . x) with no bias (paper Sec. 2.1); the weights of all M
models form one (M, F) tensor, so a step is one (B, F) x (F, M) matmul for the logits and one
(F, B) x (B, M) matmul for the gradient. The logistic gradient is written out in closed form,
d loss / d z = (sigma(z) - t) / B, so a step runs without autograd. Adam is elementwise, so one
Adam over the (M, F) tensor is M independent Adams (`SweepAdam`: torch.optim.Adam's arithmetic,
in place), and a method's weight decay is a per-model coupled L2 term added to the gradient
(as ``torch.optim.Adam(weight_decay=...)`` does).

Every method goes through the same `labaug.augment` interface. A method that may act on logits
(label smoothing, Mixup, weight decay) is applied to the (B, M) logits, which is exact for a
linear model, and its `Augmentation.logit_grad` takes the gradient back through it. A method
that must mix inputs (CutMix) builds each model's mixed inputs, a chunk of models at a time so
that no (batch, models, features) tensor exceeds `MIX_BUDGET_BYTES`, and the chunk's gradient
is computed before the next chunk is built.

Per epoch, not per step: the shuffling, the partners (one sort) and every model's draws (one
copy to the device). Per step: the batch is gathered into a buffer that every step reuses.

Every random draw depends only on the run seed and, for a method's own draws, on the model's
hyperparameter value (one generator per model), so model m follows exactly the trajectory it
would follow if it were trained alone.
"""

from __future__ import annotations

import ctypes
import logging
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from labaug import augment
from labaug.augment import Augmentation
from labaug.augment.draws import EpochDraws, step_slice
from labaug.config import OptimConfig
from labaug.data import LinearData
from labaug.losses import binary_cross_entropy, binary_targets
from labaug.metrics import error_rate
from labaug.rng import torch_rng

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


_ALLOCATOR_TUNED = False


def keep_large_allocations() -> None:
    """Let glibc serve large allocations from its heap and keep freed memory (once a process).

    By default glibc maps every allocation above 32 MiB afresh and unmaps it when it is freed,
    so a step that builds a (batch, models, features) tensor pays a page fault for every page
    of it, every step: half the time of a CutMix step on CIFAR-sized images. A no-op where the
    C library is not glibc.
    """
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED or not sys.platform.startswith("linux"):
        return
    _ALLOCATOR_TUNED = True
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3          # glibc's <malloc.h>
    mallopt(m_mmap_threshold, 1 << 30)
    mallopt(m_trim_threshold, 1 << 31)


def mix_chunk(batch: int, n_features: int, itemsize: int) -> int:
    """How many models' mixed inputs fit in `MIX_BUDGET_BYTES` at once (at least one)."""
    return max(1, MIX_BUDGET_BYTES // max(1, batch * n_features * itemsize))


class SweepAdam:
    """Adam over a sweep's (M, F) weights, in place: torch.optim.Adam's single-tensor arithmetic
    op for op (so the same numbers on CPU), without the optimizer's per-step Python."""

    def __init__(self, weights: Tensor, optim: OptimConfig) -> None:
        self.lr, self.eps = optim.lr, optim.eps
        self.beta1, self.beta2 = optim.betas
        self.exp_avg = torch.zeros_like(weights)
        self.exp_avg_sq = torch.zeros_like(weights)
        self.steps = 0

    def step(self, weights: Tensor, grad: Tensor) -> None:
        """One Adam update of ``weights`` from ``grad`` (weight decay already added to it)."""
        self.steps += 1
        self.exp_avg.lerp_(grad, 1 - self.beta1)
        self.exp_avg_sq.mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
        bias_correction1 = 1 - self.beta1 ** self.steps
        bias_correction2 = 1 - self.beta2 ** self.steps
        denom = (self.exp_avg_sq.sqrt() / bias_correction2 ** 0.5).add_(self.eps)
        weights.addcdiv_(self.exp_avg, denom, value=-(self.lr / bias_correction1))


StepResult = tuple[Tensor, Tensor | None]
"""A step's data-loss gradient (M, F) and, when asked for, its per-model mean loss (M,)."""


def logit_step(aug: Augmentation, xb: Tensor, tb: Tensor, w: Tensor, values: Tensor,
               draws: dict[str, Tensor], partner: Tensor | None, loss: bool) -> StepResult:
    """One step of a method that acts on logits, backward pass in closed form.

    Logits z = x W^T (B, M); the method maps (z, targets) to (z', t'); d loss / d z' is
    (sigma(z') - t') / B; `Augmentation.logit_grad` takes it back to z; and d loss / d W is
    its product with x. Five small operations and two matrix products, no autograd.
    """
    b = xb.shape[0]
    logits, targets = aug.apply(torch.mm(xb, w.T), tb, values, draws, partner)
    target = targets[..., 1]
    residual = torch.sigmoid(logits).sub_(target).mul_(1.0 / b)
    grad = torch.mm(xb.T, aug.logit_grad(residual, values, draws, partner)).T
    if not loss:
        return grad, None
    return grad, binary_cross_entropy(logits, target.expand_as(logits)).mean(dim=0)


def mixed_input_step(aug: Augmentation, xb: Tensor, tb: Tensor, w: Tensor, values: Tensor,
                     draws: dict[str, Tensor], partner: Tensor | None, loss: bool,
                     shape: tuple[int, int, int], chunk: int) -> StepResult:
    """One step of a method that must mix inputs: each chunk of models' mixed inputs (B, m, F)
    is built, used for the logits and the closed-form gradient mean_b (sigma(z) - t) x, and
    dropped before the next chunk."""
    b, n_features = xb.shape
    n_models = w.shape[0]
    grad = torch.empty_like(w)
    parts = []
    for lo in range(0, n_models, chunk):
        hi = min(lo + chunk, n_models)
        dc = {k: v[:, lo:hi] for k, v in draws.items()}
        xm, targets = aug.apply(xb.view(b, 1, *shape), tb, values[lo:hi], dc, partner)
        xm = xm.reshape(b, hi - lo, n_features)                  # (B, m, F)
        # One matrix-vector product per model reads xm in place; einsum would first copy it
        # to model-major order (2.4x slower on CIFAR shapes).
        logits = torch.stack([xm[:, j] @ w[lo + j] for j in range(hi - lo)], dim=1)
        target = targets[..., 1].expand(b, hi - lo)
        if loss:
            parts.append(binary_cross_entropy(logits, target).mean(dim=0))
        residual = (torch.sigmoid(logits) - target) / b
        grad[lo:hi] = torch.einsum("bm,bmf->mf", residual, xm)
    return grad, torch.cat(parts) if loss else None


def logged_epochs(epochs: int) -> set[int]:
    """The epochs (0-based) whose training loss is computed: the first, every tenth of the run
    (the log's progress lines) and the last (the result's ``train_loss``)."""
    every = max(1, epochs // 10)
    return {0, epochs - 1} | {e for e in range(epochs) if (e + 1) % every == 0}


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
    keep_large_allocations()
    hp = np.asarray(hp_values, dtype=np.float64)
    n_models = len(hp)
    dev = torch.device(device)
    x = torch.as_tensor(data.x_train, dtype=dtype, device=dev)
    # Binary targets as two-class one-hot rows (K = 2), the form every method augments.
    t1 = binary_targets(torch.as_tensor(data.y_train, dtype=dtype, device=dev))
    t = torch.stack([1.0 - t1, t1], dim=1).unsqueeze(1)              # (N, 1, 2)
    n, n_features = x.shape
    values = torch.as_tensor(hp, dtype=dtype, device=dev)
    decays = [aug.decay(v) for v in hp]
    decay = (torch.as_tensor(decays, dtype=dtype, device=dev)[:, None]
             if any(decays) else None)
    shape = data.image_shape
    if aug.needs_spatial and shape is None:
        raise ValueError(f"{method} needs images, but this sweep's data are plain vectors")

    # nn.Linear's default init, U(-1/sqrt(F), 1/sqrt(F)), shared by every model of the sweep.
    bound = 1.0 / math.sqrt(n_features)
    init = torch.rand(n_features, generator=torch_rng(seed, "linear", "init"), dtype=torch.float64)
    w = ((2.0 * init - 1.0) * bound).to(dtype).to(dev).expand(n_models, n_features).clone()
    adam = SweepAdam(w, optim)

    order_rng = torch_rng(seed, "linear", "order")
    sampler = EpochDraws(aug, seed, ("linear",), hp, mix_per_batch,
                         None if shape is None else (shape[1], shape[2]))
    bs = optim.batch_size
    steps = math.ceil(n / bs)
    chunk = mix_chunk(bs, n_features, x.element_size())
    tracked = logged_epochs(optim.epochs)

    epoch_loss = torch.zeros(n_models, dtype=torch.float64, device=dev)
    # A step's batch is gathered into these buffers: no allocation (nor page faults) per step,
    # and the batch is still in cache when the gradient's matrix product reads it again.
    x_buf, t_buf = x.new_empty(bs, n_features), t.new_empty(bs, *t.shape[1:])
    with torch.no_grad():
        for epoch in range(optim.epochs):
            order = torch.randperm(n, generator=order_rng).to(dev)
            draws, partners = sampler.epoch(n, bs, dev, dtype)
            track = epoch in tracked
            epoch_loss.zero_()
            for step in range(steps):
                idx = order[step * bs:(step + 1) * bs]
                b = len(idx)
                xb = torch.index_select(x, 0, idx, out=x_buf[:b])
                tb = torch.index_select(t, 0, idx, out=t_buf[:b])
                d = step_slice(draws, step, b)
                partner = None if partners is None else partners[step]
                if aug.mixes_inputs:
                    assert shape is not None
                    grad, loss = mixed_input_step(aug, xb, tb, w, values, d, partner, track,
                                                  shape, chunk)
                else:
                    grad, loss = logit_step(aug, xb, tb, w, values, d, partner, track)
                if decay is not None:
                    grad = grad.add(decay * w)   # coupled weight decay: Adam sees grad + lambda w
                adam.step(w, grad)
                if loss is not None:
                    epoch_loss += loss.to(torch.float64) * (b / n)
            if track:
                log.info("%s seed %d epoch %d/%d: train loss %s", method, seed, epoch + 1,
                         optim.epochs, np.array2string(epoch_loss.cpu().numpy(), precision=4,
                                                       max_line_width=10_000))

    weights = w.to(torch.float64).cpu().numpy()
    x_test = torch.as_tensor(data.x_test, dtype=torch.float64)
    return SweepResult(
        hp_values=hp,
        weights=weights,
        train_loss=epoch_loss.cpu().numpy(),
        test_error=error_rate(torch.as_tensor(weights) @ x_test.T,
                              torch.as_tensor(data.y_test, dtype=torch.float64)).numpy(),
    )
