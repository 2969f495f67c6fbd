"""The batched sweep equals training each model alone with the same seed."""

from __future__ import annotations

import numpy as np
import pytest

from labaug.config import OptimConfig, SyntheticConfig
from labaug.data.synthetic import make_synthetic
from labaug.train.linear import train_sweep

GRIDS = {
    "weight_decay": np.linspace(0.0, 0.1, 5),
    "label_smoothing": np.linspace(0.0, 0.1, 5),
    "mixup": np.linspace(0.0, 1.0, 5),
}


@pytest.mark.parametrize(
    ("method", "per_batch"),
    [("weight_decay", False), ("label_smoothing", False), ("mixup", False), ("mixup", True)],
)
def test_batched_sweep_equals_one_model_at_a_time(method: str, per_batch: bool) -> None:
    cfg = SyntheticConfig(n_train=2000, n_test=500)
    optim = OptimConfig(batch_size=200, epochs=5, lr=1e-2)
    data = make_synthetic(cfg, 11, "low", 0.1)
    grid = GRIDS[method]
    batched = train_sweep(data, method, grid, 11, optim, mix_per_batch=per_batch)  # type: ignore[arg-type]
    for m, value in enumerate(grid):
        alone = train_sweep(data, method, [value], 11, optim, mix_per_batch=per_batch)  # type: ignore[arg-type]
        assert np.abs(batched.weights[m] - alone.weights[0]).max() < 1e-5
        assert batched.test_error[m] == alone.test_error[0]
    # The grid really is different models: the trajectories separate.
    assert np.abs(batched.weights[0] - batched.weights[-1]).max() > 1e-3


def test_same_seed_same_numbers_and_seeds_differ() -> None:
    cfg = SyntheticConfig(n_train=1000, n_test=200)
    optim = OptimConfig(batch_size=250, epochs=2)
    data = make_synthetic(cfg, 0, "zero", 0.1)
    a = train_sweep(data, "mixup", [0.5, 1.0], 0, optim)
    b = train_sweep(data, "mixup", [0.5, 1.0], 0, optim)
    c = train_sweep(data, "mixup", [0.5, 1.0], 1, optim)
    np.testing.assert_array_equal(a.weights, b.weights)
    assert not np.array_equal(a.weights, c.weights)
