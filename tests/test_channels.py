"""Class channels (Sec. 4.3): seeded vectors, TRAIN inputs carry them, TEST inputs zeros."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from labaug.data.channels import (
    class_channel_data,
    class_vectors,
    default_sigma,
    load_class_channel_data,
    with_class_channels,
    with_zero_channels,
)
from labaug.data.images import channel_stats, standardize
from labaug.data.raw import RawImages, save_npz

torch.set_num_threads(1)


def _raw(n_train: int = 60, n_test: int = 30, k: int = 4, c: int = 3, hw: int = 6) -> RawImages:
    rng = np.random.default_rng(123)
    return RawImages(
        x_train=rng.integers(0, 256, (n_train, c, hw, hw), dtype=np.uint8),
        y_train=rng.integers(0, k, n_train).astype(np.int64),
        x_test=rng.integers(0, 256, (n_test, c, hw, hw), dtype=np.uint8),
        y_test=rng.integers(0, k, n_test).astype(np.int64),
        classes=tuple(f"class{i}" for i in range(k)),
    )


def test_default_sigma_is_one_over_sqrt_dimension() -> None:
    assert default_sigma((3, 32, 32)) == pytest.approx(1 / math.sqrt(3072))
    assert default_sigma((1, 28, 28)) == pytest.approx(1 / 28)


def test_class_vectors_seeded_per_dataset_and_seed() -> None:
    a = class_vectors("cifar10", 0, 10, (3, 32, 32))
    assert a.shape == (10, 3, 32, 32) and a.dtype == np.float32
    np.testing.assert_array_equal(a, class_vectors("cifar10", 0, 10, (3, 32, 32)))
    assert not np.allclose(a, class_vectors("cifar10", 1, 10, (3, 32, 32)))
    assert not np.allclose(a, class_vectors("cifar100", 0, 10, (3, 32, 32)))
    # N(0, sigma^2 I) with sigma = 1/sqrt(CHW): each vector has squared norm close to 1.
    norms = np.linalg.norm(a.reshape(10, -1), axis=1)
    assert np.all(np.abs(norms - 1.0) < 0.1)
    assert abs(a.std() - 1 / math.sqrt(3072)) < 0.02 / math.sqrt(3072) * 10
    b = class_vectors("cifar10", 0, 10, (3, 32, 32), sigma=0.5)
    np.testing.assert_allclose(b, a * 0.5 * math.sqrt(3072), rtol=1e-5)


def test_class_channel_data_standardizes_and_subsets() -> None:
    raw = _raw()
    d = class_channel_data(raw, "gen", 3, train_subset=40, test_subset=10)
    assert d.x_train.shape == (40, 3, 6, 6) and d.x_test.shape == (10, 3, 6, 6)
    assert d.x_train.dtype == np.float32
    np.testing.assert_array_equal(d.y_train, raw.y_train[:40])    # the first n images
    np.testing.assert_array_equal(d.y_test, raw.y_test[:10])
    np.testing.assert_allclose(d.x_train.mean(axis=(0, 2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(d.x_train.std(axis=(0, 2, 3)), 1.0, atol=1e-4)
    assert d.num_classes == 4 and d.in_channels == 6
    assert d.class_vectors.shape == (4, 3, 6, 6)
    assert d.sigma == pytest.approx(1 / math.sqrt(108))
    full = class_channel_data(raw, "gen", 3)
    assert full.x_train.shape[0] == 60 and full.x_test.shape[0] == 30


def test_standardization_is_the_shared_image_code_with_subset_statistics() -> None:
    # Class-channel data and the binary image task standardize with the same functions
    # (labaug.data.images), here with the statistics of the kept training prefix only.
    raw = _raw()
    d = class_channel_data(raw, "gen", 3, train_subset=40, test_subset=10)
    mean, std = channel_stats(raw.x_train[:40])
    by_hand = raw.x_train[:40].astype(np.float64) / 255.0
    np.testing.assert_allclose(mean, by_hand.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(std, by_hand.std(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_array_equal(d.x_train, standardize(raw.x_train[:40], mean, std))
    np.testing.assert_array_equal(d.x_test, standardize(raw.x_test[:10], mean, std))


def test_load_from_raw_npz(tmp_path: Path) -> None:
    raw = _raw()
    save_npz(raw, tmp_path / "gen.npz")
    d = load_class_channel_data(tmp_path / "gen.npz", "gen", 0, sigma=0.25)
    e = class_channel_data(raw, "gen", 0, sigma=0.25)
    np.testing.assert_array_equal(d.x_train, e.x_train)
    np.testing.assert_array_equal(d.class_vectors, e.class_vectors)
    assert d.classes == raw.classes and d.sigma == 0.25


def test_train_inputs_carry_their_class_vector_and_test_inputs_zeros() -> None:
    d = class_channel_data(_raw(), "gen", 0)
    x = torch.as_tensor(d.x_train)
    y = torch.as_tensor(d.y_train)
    v = torch.as_tensor(d.class_vectors)
    xin = with_class_channels(x, y, v)
    assert xin.shape == (60, 6, 6, 6)
    torch.testing.assert_close(xin[:, :3], x, rtol=0, atol=0)
    for i in range(len(y)):
        torch.testing.assert_close(xin[i, 3:], v[y[i]], rtol=0, atol=0)
        for k in range(4):
            if k != int(y[i]):
                assert not torch.equal(xin[i, 3:], v[k])
    xt = with_zero_channels(torch.as_tensor(d.x_test))
    assert xt.shape == (30, 6, 6, 6)
    torch.testing.assert_close(xt[:, :3], torch.as_tensor(d.x_test), rtol=0, atol=0)
    assert torch.count_nonzero(xt[:, 3:]) == 0
