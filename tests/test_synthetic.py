"""The synthetic sampler satisfies Definition 2.1 (and 4.1) with the config defaults."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from labaug.config import SyntheticConfig, defaults, from_dict
from labaug.data.synthetic import high_block, low_block, make_synthetic
from tests.conftest import merged_config


@pytest.fixture(scope="module")
def cfg() -> SyntheticConfig:
    return defaults().synthetic


def test_defaults_come_from_config_yaml(cfg: SyntheticConfig) -> None:
    assert (cfg.d, cfg.gamma, cfg.u_low, cfg.u_high, cfg.n_train) == (5, 0.5, 1.0, 5.0, 50_000)
    assert cfg == from_dict(merged_config()).synthetic
    # config.yaml is the only place with defaults: the dataclass has none of its own.
    assert all(f.default is dataclasses.MISSING for f in dataclasses.fields(SyntheticConfig))
    with pytest.raises(TypeError):
        SyntheticConfig()  # type: ignore[call-arg]


def test_zero_conditional_variance_in_low_block(cfg: SyntheticConfig) -> None:
    data = make_synthetic(cfg, 0, "zero", 0.1)
    for x, y in ((data.x_train, data.y_train), (data.x_test, data.y_test)):
        low = x[:, low_block(cfg)]
        for label in (-1.0, 1.0):
            block = low[y == label]
            assert np.all(block == np.float32(label * cfg.gamma))


def test_high_block_has_positive_definite_conditional_covariance(cfg: SyntheticConfig) -> None:
    data = make_synthetic(cfg, 0, "zero", 0.1)
    for label in (-1.0, 1.0):
        high = data.x_train[data.y_train == label][:, high_block(cfg)].astype(np.float64)
        eig = np.linalg.eigvalsh(np.cov(high.T))
        assert eig.min() > 0.5 * (cfg.u_high - cfg.u_low) ** 2 / 12


def test_high_block_is_more_separable(cfg: SyntheticConfig) -> None:
    # Distance between the class supports, per block, estimated from the sample: the supports
    # are boxes, so the distance is attained along the all-ones direction.
    data = make_synthetic(cfg, 0, "zero", 0.1)
    ones = np.ones(cfg.d) / np.sqrt(cfg.d)

    def gap(block: slice) -> float:
        proj = data.x_train[:, block].astype(np.float64) @ ones
        return float(proj[data.y_train > 0].min() - proj[data.y_train < 0].max())

    assert gap(high_block(cfg)) > gap(low_block(cfg)) > 0


def test_mean_zero_and_balanced(cfg: SyntheticConfig) -> None:
    data = make_synthetic(cfg, 1, "zero", 0.1)
    assert abs(data.y_train.mean()) < 0.02
    assert np.abs(data.x_train.mean(axis=0)).max() < 0.1


def test_low_variance_variant_noise(cfg: SyntheticConfig) -> None:
    data = make_synthetic(cfg, 2, "low", 0.1)
    low = data.x_train[:, low_block(cfg)] - data.y_train[:, None] * cfg.gamma
    scale = cfg.gamma * 0.1
    assert np.abs(low).max() <= scale + 1e-6
    assert low.std() > 0.5 * scale / np.sqrt(3)


def test_same_seed_same_sample_and_fresh_test(cfg: SyntheticConfig) -> None:
    a = make_synthetic(cfg, 7, "zero", 0.1)
    b = make_synthetic(cfg, 7, "zero", 0.1)
    c = make_synthetic(cfg, 8, "zero", 0.1)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.x_train, c.x_train)
    assert not np.array_equal(a.x_train[: cfg.n_test], a.x_test)
