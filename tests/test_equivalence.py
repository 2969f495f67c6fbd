"""The batched sweep equals training each model alone with the same seed."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from labaug import augment
from labaug.config import defaults
from labaug.data.synthetic import make_synthetic
from labaug.train.linear import train_sweep

SYNTHETIC = augment.for_experiment(augment.names(), "synthetic")
# Every synthetic method, and once more with one mixing draw per batch where it pairs examples.
CASES = [(m, False) for m in SYNTHETIC] + [
    (m, True) for m in SYNTHETIC if augment.get(m).needs_partner]


def grid(method: str, size: int = 5) -> np.ndarray:
    """``size`` evenly spaced values over the method's configured grid (config.yaml)."""
    return replace(defaults().grids[method], size=size).values()


@pytest.mark.parametrize(("method", "per_batch"), CASES,
                         ids=[f"{m}-{'batch' if p else 'example'}" for m, p in CASES])
def test_batched_sweep_equals_one_model_at_a_time(method: str, per_batch: bool) -> None:
    cfg = replace(defaults().synthetic, n_train=2000, n_test=500)
    optim = replace(defaults().optim, batch_size=200, epochs=5, lr=1e-2)
    data = make_synthetic(cfg, 11, "low", 0.1)
    values = grid(method)
    batched = train_sweep(data, method, values, 11, optim, mix_per_batch=per_batch)
    for m, value in enumerate(values):
        alone = train_sweep(data, method, [value], 11, optim, mix_per_batch=per_batch)
        assert np.abs(batched.weights[m] - alone.weights[0]).max() < 1e-5
        assert batched.test_error[m] == alone.test_error[0]
    # The grid really is different models: the trajectories separate.
    assert np.abs(batched.weights[0] - batched.weights[-1]).max() > 1e-3


@pytest.mark.parametrize("method", SYNTHETIC)
def test_same_seed_same_numbers_and_seeds_differ(method: str) -> None:
    cfg = replace(defaults().synthetic, n_train=1000, n_test=200)
    optim = replace(defaults().optim, batch_size=250, epochs=2)
    data = make_synthetic(cfg, 0, "zero", 0.1)
    values = grid(method, 3)[1:]
    a = train_sweep(data, method, values, 0, optim)
    b = train_sweep(data, method, values, 0, optim)
    c = train_sweep(data, method, values, 1, optim)
    np.testing.assert_array_equal(a.weights, b.weights)
    np.testing.assert_array_equal(a.train_loss, b.train_loss)
    assert not np.array_equal(a.weights, c.weights)
