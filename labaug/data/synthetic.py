"""The synthetic distribution of Definition 4.1 and its low-variance variant (Appendix B)."""

from __future__ import annotations

import numpy as np

from labaug.config import SyntheticConfig, Variance
from labaug.data import LinearData
from labaug.rng import numpy_rng


def sample(
    cfg: SyntheticConfig,
    n: int,
    rng: np.random.Generator,
    variance: Variance = "zero",
    low_noise: float = 0.1,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw n points: x[:d] = y*gamma (+ noise if low), x[d:] = y*u with u ~ U[u_low, u_high]."""
    y = rng.choice(np.array([-1.0, 1.0]), size=n)
    low = np.full((n, cfg.d), cfg.gamma) * y[:, None]
    if variance == "low":
        scale = cfg.gamma * low_noise
        low = low + rng.uniform(-scale, scale, size=(n, cfg.d))
    high = rng.uniform(cfg.u_low, cfg.u_high, size=(n, cfg.d)) * y[:, None]
    x = np.concatenate([low, high], axis=1)
    return x.astype(np.float32), y.astype(np.float32)


def make_synthetic(
    cfg: SyntheticConfig, seed: int, variance: Variance, low_noise: float
) -> LinearData:
    """Training and fresh test samples for one run seed."""
    x_train, y_train = sample(cfg, cfg.n_train, numpy_rng(seed, "synthetic", "train"),
                              variance, low_noise)
    x_test, y_test = sample(cfg, cfg.n_test, numpy_rng(seed, "synthetic", "test"),
                            variance, low_noise)
    return LinearData(x_train, y_train, x_test, y_test)


def low_block(cfg: SyntheticConfig) -> slice:
    """Indices of the low-variance features (the first d)."""
    return slice(0, cfg.d)


def high_block(cfg: SyntheticConfig) -> slice:
    """Indices of the high-variance features (the last d)."""
    return slice(cfg.d, 2 * cfg.d)
