"""Losses against hand-computed values and against PyTorch's own label-smoothing cross-entropy."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from labaug import augment
from labaug.augment.label_smoothing import smooth
from labaug.augment.mixup import mix
from labaug.config import OptimConfig, SyntheticConfig, defaults
from labaug.data.synthetic import make_synthetic
from labaug.losses import (
    binary_cross_entropy,
    binary_targets,
    one_hot,
    soft_cross_entropy,
    weight_decay_penalty,
)
from labaug.train.linear import train_sweep


def test_binary_cross_entropy_hand_values() -> None:
    z = torch.tensor([0.0, 2.0, -1.0], dtype=torch.float64)
    t = torch.tensor([1.0, 0.0, 0.25], dtype=torch.float64)
    expected = [
        math.log(2.0),                                   # -log sigma(0)
        math.log(1.0 + math.exp(2.0)),                   # -log(1 - sigma(2))
        -(0.25 * math.log(1 / (1 + math.e)) + 0.75 * math.log(1 - 1 / (1 + math.e))),
    ]
    assert binary_cross_entropy(z, t).tolist() == pytest.approx(expected, rel=1e-12)


def test_label_smoothing_targets_hand_values() -> None:
    t = torch.tensor([0.0, 1.0], dtype=torch.float64)
    assert smooth(t, 0.1, 2).tolist() == pytest.approx([0.05, 0.95])
    oh = one_hot(torch.tensor([2]), 4).to(torch.float64)
    assert smooth(oh, 0.2, 4)[0].tolist() == pytest.approx([0.05, 0.05, 0.85, 0.05])
    assert binary_targets(torch.tensor([-1.0, 1.0])).tolist() == [0.0, 1.0]


@pytest.mark.parametrize("a", [0.0, 0.05, 0.1, 0.3])
def test_binary_label_smoothing_matches_torch_cross_entropy(a: float) -> None:
    # sigma(z) is softmax over the logits (0, z); the binary smoothed target (1-a)t + a/2 is
    # PyTorch's label_smoothing=a on two classes.
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(64, generator=gen, dtype=torch.float64) * 3
    y = torch.randint(0, 2, (64,), generator=gen)
    ours = binary_cross_entropy(z, smooth(y.to(torch.float64), a, 2)).mean()
    two_class = torch.stack([torch.zeros_like(z), z], dim=1)
    theirs = F.cross_entropy(two_class, y, label_smoothing=a)
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-12)


@pytest.mark.parametrize("a", [0.0, 0.1])
def test_soft_cross_entropy_matches_torch(a: float) -> None:
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(32, 10, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 10, (32,), generator=gen)
    ours = soft_cross_entropy(logits, smooth(one_hot(y, 10).to(torch.float64), a, 10))
    theirs = F.cross_entropy(logits, y, label_smoothing=a)
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-12)
    # The same through the registered method, as the ResNet trainer applies it (model axis 1).
    method = augment.get("label_smoothing")
    x = torch.zeros(32, 1, 3)
    values = torch.tensor([a], dtype=torch.float64)
    xa, q = method.apply(x, one_hot(y, 10).to(torch.float64)[:, None], values, {}, None)
    assert xa is x
    assert soft_cross_entropy(logits, q[:, 0]).item() == pytest.approx(theirs.item(), rel=1e-12)


def test_weight_decay_penalty_gradient_is_coupled_decay() -> None:
    w = torch.tensor([[1.0, -2.0, 3.0]], dtype=torch.float64, requires_grad=True)
    lam = torch.tensor([0.1], dtype=torch.float64)
    penalty = weight_decay_penalty(w, lam)
    assert penalty.item() == pytest.approx(0.05 * 14.0)
    (grad,) = torch.autograd.grad(penalty.sum(), w)
    assert grad[0].tolist() == pytest.approx([0.1, -0.2, 0.3])


def test_mix_hand_values() -> None:
    v = torch.tensor([1.0, 3.0, 10.0])
    lam = torch.tensor([0.25, 1.0, 0.5])
    perm = torch.tensor([1, 2, 0])
    assert mix(v, lam, perm).tolist() == pytest.approx([0.25 + 0.75 * 3, 3.0, 5.0 + 0.5])


def test_mixup_of_logits_is_mixup_of_inputs_for_a_linear_model() -> None:
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(16, 5, generator=gen, dtype=torch.float64)
    w = torch.randn(5, generator=gen, dtype=torch.float64)
    lam = torch.rand(16, generator=gen, dtype=torch.float64)
    perm = torch.randperm(16, generator=gen)
    assert torch.allclose(mix(x, lam[:, None], perm) @ w, mix(x @ w, lam, perm), atol=1e-12)


def _tiny_synthetic() -> tuple[SyntheticConfig, OptimConfig]:
    cfg = defaults()
    return (replace(cfg.synthetic, n_train=600, n_test=200),
            replace(cfg.optim, batch_size=100, epochs=3, lr=1e-2))


@pytest.mark.parametrize("method", augment.for_experiment(augment.names(), "synthetic"))
def test_hyperparameter_zero_is_exactly_erm(method: str) -> None:
    # lambda = 0, a = 0, alpha = 0 (lambda ~ Beta = 1): every method at 0 is plain training,
    # bitwise; the reference is weight decay 0, i.e. no decay term at all.
    cfg, optim = _tiny_synthetic()
    data = make_synthetic(cfg, 3, "zero", 0.1)
    ours = train_sweep(data, method, [0.0], 3, optim)
    erm = train_sweep(data, "weight_decay", [0.0], 3, optim)
    np.testing.assert_array_equal(ours.weights, erm.weights)
    np.testing.assert_array_equal(ours.train_loss, erm.train_loss)


def test_weight_decay_is_torch_adam_coupled_weight_decay() -> None:
    # One model trained by the sweep trainer equals nn.Linear + torch.optim.Adam(weight_decay=lam)
    # fed the same batches (float64, so the comparison is tight).
    from labaug.rng import torch_rng

    cfg, optim = _tiny_synthetic()
    data = make_synthetic(cfg, 5, "zero", 0.1)
    lam = 0.07
    ours = train_sweep(data, "weight_decay", [lam], 5, optim, dtype=torch.float64)

    x = torch.as_tensor(data.x_train, dtype=torch.float64)
    t = binary_targets(torch.as_tensor(data.y_train, dtype=torch.float64))
    bound = 1.0 / math.sqrt(x.shape[1])
    init = torch.rand(x.shape[1], generator=torch_rng(5, "linear", "init"), dtype=torch.float64)
    w = torch.nn.Parameter(((2 * init - 1) * bound).clone())
    opt = torch.optim.Adam([w], lr=optim.lr, betas=optim.betas, eps=optim.eps, weight_decay=lam)
    order_rng = torch_rng(5, "linear", "order")
    for _ in range(optim.epochs):
        order = torch.randperm(len(x), generator=order_rng)
        for start in range(0, len(x), optim.batch_size):
            idx = order[start:start + optim.batch_size]
            loss = F.binary_cross_entropy_with_logits(x[idx] @ w, t[idx])
            opt.zero_grad()
            torch.autograd.backward(loss)
            opt.step()
    np.testing.assert_allclose(ours.weights[0], w.detach().numpy(), atol=1e-10)
