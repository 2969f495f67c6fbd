"""The real Fashion-MNIST files (Debian's dataset-fashion-mnist) through the binary pipeline."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from labaug import augment
from labaug.config import defaults
from labaug.data.images import make_binary
from labaug.data.raw import RawImages, load_npz, local_source_files
from labaug.jobs import fetch_job
from labaug.metrics import pixel_ratio
from labaug.train.linear import train_sweep
from tests.conftest import merged_config

torch.set_num_threads(1)

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
pytestmark = pytest.mark.skipif(
    not DEBIAN_DIR.is_dir(),
    reason=f"{DEBIAN_DIR} is absent: install Debian's package with "
           "`apt-get install dataset-fashion-mnist` to run the real-data tests",
)


@pytest.fixture(scope="module")
def fmnist(tmp_path_factory: pytest.TempPathFactory) -> RawImages:
    """The real dataset, acquired as the workflow does it: from config.yaml's data source."""
    out = tmp_path_factory.mktemp("raw") / "fmnist.npz"
    config = merged_config()
    config["allow_download"] = False  # must come from the local Debian files
    assert config["data_sources"]["fmnist"] == str(DEBIAN_DIR)
    fetch_job(config, "fmnist", out)
    return load_npz(out)


def test_debian_files_verify_and_parse(fmnist: RawImages) -> None:
    assert len(local_source_files("fmnist", DEBIAN_DIR)) == 4
    assert fmnist.x_train.shape == (60_000, 1, 28, 28) and fmnist.x_train.dtype == np.uint8
    assert fmnist.x_test.shape == (10_000, 1, 28, 28)
    assert fmnist.classes[:2] == ("T-shirt/top", "Trouser") and len(fmnist.classes) == 10
    np.testing.assert_array_equal(np.bincount(fmnist.y_train), np.full(10, 6000))
    np.testing.assert_array_equal(np.bincount(fmnist.y_test), np.full(10, 1000))
    # the first training labels of the published dataset: ankle boot, T-shirt, T-shirt, dress
    np.testing.assert_array_equal(fmnist.y_train[:4], [9, 0, 0, 3])


def test_real_binary_pipeline_learns_the_identifying_pixel(fmnist: RawImages) -> None:
    """Full training set, 100 epochs, one seed, grids reduced to their end points (Sec. 4.2).

    With the zero-variance pixel, every label augmentation at the top of its grid (label
    smoothing a = 0.1, Mixup alpha = 1, and CutMix alpha = 1, which is not in the paper) puts
    far more weight on the identifying pixel than weight decay (lambda = 0.1) and tests worse.
    """
    cfg = defaults()
    data = make_binary(fmnist, 0, "zero", cfg.image_gamma, cfg.low_noise)
    assert data.x_train.shape == (12_000, 784) and data.x_test.shape == (2_000, 784)
    assert data.image_shape == (1, 28, 28)
    assert np.sum(data.y_train == 1) == 6000 and np.sum(data.y_test == -1) == 1000
    optim = replace(cfg.optim, epochs=100)
    wd_top = cfg.grids["weight_decay"].high
    wd = train_sweep(data, "weight_decay", [0.0, wd_top], 0, optim)
    assert wd.test_error[0] < 0.03  # ERM separates T-shirts from trousers on the real test set
    wd_ratio = pixel_ratio(wd.weights)[1]
    augmentations = [m for m in augment.for_experiment(augment.names(), "binary_images")
                     if m != "weight_decay"]
    assert augmentations
    for method in augmentations:
        augmented = train_sweep(data, method, [cfg.grids[method].high], 0, optim)
        assert pixel_ratio(augmented.weights)[0] > 2.0 * wd_ratio, method
        assert augmented.test_error[0] > wd.test_error[1] + 0.01, method
