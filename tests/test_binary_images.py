"""The binary identifying-pixel task (Sec. 4.2, App. B) and its workflow on generated archives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from labaug import augment
from labaug.data.images import (
    IDENTIFYING_PIXEL,
    make_binary,
    make_task,
    read_task,
    two_classes,
    write_task,
)
from labaug.data.raw import RawImages
from labaug.results import METHOD_DIM
from tests.conftest import merged_config

GAMMA = 0.5


def fake_raw(seed: int = 0, n_train: int = 200, n_test: int = 80, c: int = 3,
             hw: int = 5, k: int = 4) -> RawImages:
    """Random uint8 images of k classes, with a class-dependent brightness per channel."""
    rng = np.random.default_rng(seed)
    y_train = rng.integers(0, k, n_train).astype(np.int64)
    y_test = rng.integers(0, k, n_test).astype(np.int64)
    x_train = rng.integers(0, 200, (n_train, c, hw, hw)) + 10 * y_train[:, None, None, None]
    x_test = rng.integers(0, 200, (n_test, c, hw, hw)) + 10 * y_test[:, None, None, None]
    return RawImages(x_train.astype(np.uint8), y_train, x_test.astype(np.uint8), y_test,
                     tuple(f"class{i}" for i in range(k)))


def reference_features(raw: RawImages) -> tuple[np.ndarray, np.ndarray]:
    """Standardize by hand with training statistics of the two kept classes, then flatten."""
    keep_train, keep_test = raw.y_train < 2, raw.y_test < 2
    train = raw.x_train[keep_train].astype(np.float64) / 255.0
    test = raw.x_test[keep_test].astype(np.float64) / 255.0
    mean = train.mean(axis=(0, 2, 3), keepdims=True)
    std = train.std(axis=(0, 2, 3), keepdims=True)
    return (((train - mean) / std).reshape(len(train), -1),
            ((test - mean) / std).reshape(len(test), -1))


def test_only_two_classes_survive_with_labels_pm1() -> None:
    raw = fake_raw()
    data = make_binary(raw, 0, "zero", GAMMA, 0.1)
    assert len(data.y_train) == int(np.sum(raw.y_train < 2))
    assert len(data.y_test) == int(np.sum(raw.y_test < 2))
    assert set(np.unique(data.y_train)) == {-1.0, 1.0}
    assert set(np.unique(data.y_test)) == {-1.0, 1.0}
    np.testing.assert_array_equal(data.y_train, np.where(raw.y_train[raw.y_train < 2] == 1,
                                                         1.0, -1.0))
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.float32
    assert data.n_features == 3 * 5 * 5
    assert data.image_shape == (3, 5, 5)    # what input-mixing methods (CutMix) need


def test_two_classes_keeps_order_and_maps_class0_to_minus1() -> None:
    x = np.arange(6)[:, None]
    xs, ys = two_classes(x, np.array([3, 1, 0, 2, 1, 0]))
    np.testing.assert_array_equal(xs[:, 0], [1, 2, 4, 5])
    np.testing.assert_array_equal(ys, [1, -1, 1, -1])


def test_features_are_standardized_channel_major_with_train_statistics() -> None:
    raw = fake_raw()
    data = make_binary(raw, 0, "zero", GAMMA, 0.1)
    ref_train, ref_test = reference_features(raw)
    np.testing.assert_allclose(data.x_test, ref_test, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(data.x_train[:, 1:], ref_train[:, 1:], rtol=1e-5, atol=1e-5)
    # channel-major: feature c*H*W + h*W + w is channel c at (h, w)
    kept = raw.x_test[raw.y_test < 2]
    c, h, w = 2, 3, 1
    feature = c * 25 + h * 5 + w
    order = np.argsort(kept[:, c, h, w], kind="stable")
    assert np.all(np.diff(data.x_test[order, feature]) >= 0)
    # image_shape undoes the flattening: the features reshape to the standardized images
    assert data.image_shape is not None
    images = data.x_test.reshape(len(data.x_test), *data.image_shape)
    np.testing.assert_allclose(images, ref_test.reshape(images.shape), rtol=1e-5, atol=1e-5)


def test_standardization_ignores_test_images_and_other_classes() -> None:
    raw = fake_raw()
    base = make_binary(raw, 0, "zero", GAMMA, 0.1)
    other = raw.y_train >= 2
    x_train = raw.x_train.copy()
    x_train[other] = 255  # images of dropped classes must not move the statistics
    changed = RawImages(x_train, raw.y_train, np.full_like(raw.x_test, 255), raw.y_test,
                        raw.classes)
    data = make_binary(changed, 0, "zero", GAMMA, 0.1)
    np.testing.assert_array_equal(data.x_train, base.x_train)
    # test images are transformed with the (unchanged) training statistics
    ref_train, _ = reference_features(raw)
    train01 = raw.x_train[raw.y_train < 2].astype(np.float64) / 255.0
    mean, std = train01.mean(axis=(0, 2, 3)), train01.std(axis=(0, 2, 3))
    expected = np.repeat((1.0 - mean) / std, 25)
    np.testing.assert_allclose(data.x_test, np.broadcast_to(expected, data.x_test.shape),
                               rtol=1e-5)
    # the training features themselves are centred and scaled per channel
    per_channel = ref_train.reshape(len(ref_train), 3, 25)
    np.testing.assert_allclose(per_channel.mean(axis=(0, 2)), 0.0, atol=1e-9)
    np.testing.assert_allclose(per_channel.std(axis=(0, 2)), 1.0, atol=1e-9)


def test_zero_variance_pixel_is_set_in_training_data_only_at_one_coordinate() -> None:
    raw = fake_raw()
    data = make_binary(raw, 3, "zero", GAMMA, 0.1)
    ref_train, ref_test = reference_features(raw)
    assert IDENTIFYING_PIXEL == 0
    np.testing.assert_array_equal(data.x_train[:, 0], data.y_train * GAMMA)
    differs = ~np.isclose(data.x_train, ref_train, atol=1e-5)
    assert set(np.nonzero(differs)[1]) == {0}
    np.testing.assert_allclose(data.x_test, ref_test, rtol=1e-5, atol=1e-5)
    assert not np.allclose(data.x_test[:, 0], data.y_test * GAMMA)


def test_low_variance_pixel_is_noisy_seeded_and_in_range() -> None:
    raw = fake_raw()
    a = make_binary(raw, 1, "low", GAMMA, 0.1)
    b = make_binary(raw, 1, "low", GAMMA, 0.1)
    c = make_binary(raw, 2, "low", GAMMA, 0.1)
    ref_train, ref_test = reference_features(raw)
    noise = a.x_train[:, 0] - a.y_train * GAMMA
    assert np.all(np.abs(noise) <= GAMMA * 0.1 + 1e-6)
    assert noise.std() > GAMMA * 0.1 / 4  # Uniform[-s, s] has std s / sqrt(3)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.x_train[:, 0], c.x_train[:, 0])
    np.testing.assert_allclose(a.x_train[:, 1:], ref_train[:, 1:], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(a.x_test, ref_test, rtol=1e-5, atol=1e-5)
    # the zero-variance task does not depend on the seed at all
    np.testing.assert_array_equal(make_binary(raw, 1, "zero", GAMMA, 0.1).x_train,
                                  make_binary(raw, 2, "zero", GAMMA, 0.1).x_train)


def test_single_channel_images_use_the_only_channel() -> None:
    raw = fake_raw(c=1, hw=4)
    data = make_binary(raw, 0, "zero", 0.25, 0.1)
    assert data.n_features == 16 and data.image_shape == (1, 4, 4)
    np.testing.assert_array_equal(data.x_train[:, 0], data.y_train * 0.25)


@pytest.mark.parametrize("variance", ["zero", "low"])
def test_task_file_gives_make_binary_for_every_seed(tmp_path: Path, variance: str) -> None:
    raw = fake_raw()
    task = make_task(raw, (0, 1), variance, 0.5, 0.1)
    write_task(task, tmp_path / "task.npz")
    back = read_task(tmp_path / "task.npz")
    assert (back.gamma, back.variance, back.low_noise) == (0.5, variance, 0.1)
    for seed in (0, 3, 7):
        want = make_binary(raw, seed, variance, 0.5, 0.1, (0, 1))
        got = back.for_seed(seed)
        for field in ("x_train", "y_train", "x_test", "y_test"):
            assert np.array_equal(getattr(got, field), getattr(want, field)), field
        assert (got.image_shape, got.classes) == (want.image_shape, want.classes)
    # A task file holds no seed: every seed's identifying values come from it.
    assert not np.array_equal(back.for_seed(5).x_train[:, 0], back.for_seed(0).x_train[:, 0]) \
        or variance == "zero"


def test_unknown_variance_is_rejected() -> None:
    with pytest.raises(ValueError, match="variance"):
        make_binary(fake_raw(), 0, "medium", GAMMA, 0.1)  # type: ignore[arg-type]


@pytest.mark.slow
def test_workflow_builds_image_figures_from_generated_cifar_archives(smoke_run: Path) -> None:
    """config pointing at a directory of CIFAR archives builds figs 2, 3 and 7."""
    smoke = merged_config("smoke")
    methods = augment.for_experiment(smoke["methods"], "binary_images")
    for target in ["figures/fig2.pdf", "figures/fig3.pdf", "figures/fig7.pdf"]:
        pdf = smoke_run / target
        assert pdf.stat().st_size > 1000 and pdf.read_bytes().startswith(b"%PDF")
    for name in ("cifar10", "cifar100"):
        assert (smoke_run / "data" / "raw" / f"{name}.npz").exists()
        assert (smoke_run / "logs" / "data" / f"fetch_{name}.log").exists()
        for variance in ("zero", "low"):
            with xr.open_dataset(smoke_run / "results" / "linear" / f"{name}_{variance}.nc") as ds:
                assert list(ds[METHOD_DIM].values) == methods
                ratio = ds["pixel_ratio"].values
                sizes = {smoke["grids"][m]["size"] for m in methods}
                assert ratio.shape == (len(methods), max(sizes), len(smoke["seeds"]))
                assert np.all(np.isfinite(ratio))
                assert ds["weight"].sizes["feature"] == 3 * 32 * 32
