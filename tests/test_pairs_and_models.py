"""Configurable class pairs, the pair-difficulty measure, and the class-channel model choice."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from labaug.config import defaults
from labaug.data.channels import class_channel_data
from labaug.data.images import binary_task, make_binary, pair_names
from labaug.data.raw import RawImages
from labaug.models import build_model, describe_model
from labaug.models.nets import ClassChannelMLP
from labaug.pairs import difficulty_table, pair_difficulty
from labaug.rng import torch_rng
from labaug.train.resnet import ResNetRun, train_resnet
from tests.test_binary_images import fake_raw

CONFIG = defaults()


def separable_by_class(k: int = 4, n: int = 400, seed: int = 0) -> RawImages:
    """Images whose class j has brightness 60 * j plus noise: classes 0 and 3 far apart,
    neighbours close, so pairs differ in difficulty."""
    rng = np.random.default_rng(seed)

    def make(m: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, k, m).astype(np.int64)
        x = np.clip(60 * y[:, None, None, None] + rng.normal(20, 40, (m, 1, 4, 4)), 0, 255)
        return x.astype(np.uint8), y

    (xtr, ytr), (xte, yte) = make(n), make(n // 2)
    return RawImages(xtr, ytr, xte, yte, tuple(f"c{j}" for j in range(k)))


def test_a_pair_selects_its_two_classes_in_order() -> None:
    raw = fake_raw()
    task = binary_task(raw, (2, 0))
    keep = (raw.y_train == 2) | (raw.y_train == 0)
    assert len(task.y_train) == keep.sum()
    np.testing.assert_array_equal(task.y_train, np.where(raw.y_train[keep] == 0, 1.0, -1.0))
    assert task.classes == f"{raw.classes[2]} vs {raw.classes[0]}"
    # The default pair is the paper's first two classes, unchanged.
    default = make_binary(raw, 0, "zero", 0.5, 0.1)
    first = make_binary(raw, 0, "zero", 0.5, 0.1, (0, 1))
    np.testing.assert_array_equal(default.x_train, first.x_train)


@pytest.mark.parametrize(("pair", "match"), [((0, 9), "outside this dataset's 4 classes"),
                                             ((1, 1), "names one class twice")])
def test_a_bad_pair_is_named(pair: tuple[int, int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        pair_names(fake_raw().classes, pair)


def test_pair_difficulty_ranks_near_classes_harder() -> None:
    torch.set_num_threads(1)
    ds = pair_difficulty(separable_by_class(), replace(CONFIG.optim, epochs=20, lr=1e-2,
                                                      batch_size=100))
    assert ds.sizes["pair"] == 6
    err = {(int(a), int(b)): float(e) for a, b, e in
           zip(ds["class_a"].values, ds["class_b"].values, ds["test_error"].values,
               strict=True)}
    assert err[(0, 3)] < err[(0, 1)] and err[(0, 3)] < err[(2, 3)]
    table = difficulty_table(ds).splitlines()
    assert table[0].startswith("| pair") and len(table) == 2 + 6
    listed = [float(line.split("|")[3]) for line in table[2:]]
    assert listed == sorted(listed, reverse=True)                      # hardest first


def test_the_mlp_is_a_relu_mlp_over_the_flattened_input() -> None:
    model = build_model("mlp", (2, 4, 4), 3, 64, (16, 8), torch_rng(0, "init"))
    assert isinstance(model, ClassChannelMLP)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(32, 16), (16, 8), (8, 3)]
    assert model(torch.zeros(5, 2, 4, 4)).shape == (5, 3)
    again = build_model("mlp", (2, 4, 4), 3, 64, (16, 8), torch_rng(0, "init"))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                 again.state_dict().values(), strict=True))
    assert describe_model("mlp", 64, (16, 8)) == "ReLU MLP, hidden 16-8"
    with pytest.raises(ValueError, match="resnet.models"):
        build_model("vit", (2, 4, 4), 3, 64, (16,), torch_rng(0, "init"))


def test_the_mlp_trains_through_the_same_trainer() -> None:
    torch.set_num_threads(1)
    data = class_channel_data(separable_by_class(), "gen", 0)
    resnet = replace(CONFIG.resnet, models=("mlp",), mlp_hidden=(32,), device="cpu",
                     precision="fp32", compile=False)
    history = train_resnet(data, ResNetRun("gen", "weight_decay", 0, model="mlp"),
                           replace(CONFIG.optim, epochs=5, batch_size=100, lr=1e-2), resnet)
    assert history.train_loss[-1] < history.train_loss[0]
    assert np.all(np.isfinite(history.test_error))
