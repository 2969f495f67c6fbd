"""The model registry of the class-channel runs and the per-epoch diagnosis (Fig. 8).

Every registered model trains; the ResNet without normalization starts as its shortcuts; the
diagnosis measures what it says on models built to have a known answer and never touches the
run's state; results with ``model`` and ``grid`` open and select like every other result, and
results of the older layout still load (or say what to rerun).
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from torch import Tensor, nn

from labaug import models
from labaug.config import defaults
from labaug.data.channels import ClassChannelData, class_channel_data
from labaug.models.nets import ClassChannelNet, NormFreeResNet18, group_count
from labaug.results import (
    GRID_DIM,
    METHOD_DIM,
    MODEL_DIM,
    OutdatedResultError,
    aggregate,
    read_netcdf,
    resnet_job_dataset,
    write_netcdf,
)
from labaug.rng import torch_rng
from labaug.train.evaluation import (
    channel_following,
    feature_variance_ratio,
    has_running_stats,
    recalibrated,
)
from labaug.train.resnet import METRICS, ResNetRun, ResNetTrainer, train_resnet
from tests.test_resnet import separable_raw

torch.set_num_threads(1)

OPTIM = replace(defaults().optim, batch_size=60, epochs=2)
TINY = replace(defaults().resnet, datasets=("gen",), width=4, mlp_hidden=(16,),
               checkpoint_minutes=0.0, diagnosis_subset=100)
ON_CUDA = pytest.param("cuda", marks=[
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(),
                       reason="needs a CUDA GPU: torch.cuda.is_available() is False here")])


@pytest.fixture(scope="module")
def data() -> ClassChannelData:
    return class_channel_data(separable_raw(), "gen", 0)


# -- the registry ------------------------------------------------------------------------------

def test_the_registry_holds_the_paper_model_and_its_variants() -> None:
    assert models.names() == ("mlp", "resnet18", "resnet18_gn", "resnet18_nn")
    assert defaults().resnet.models == ("resnet18",)          # the paper's model by default
    with pytest.raises(ValueError, match=r"unknown model 'vit' \(config resnet.models\)"):
        models.get("vit")
    impostor = type("ResNet18", (models.Model,), {"__module__": "someone.else",
                                                  "name": "resnet18", "title": "T",
                                                  "summary": "s"})
    with pytest.raises(ValueError, match="already registered"):
        models.register(impostor)


@pytest.mark.parametrize("name", models.names())
def test_every_model_takes_a_step_that_lowers_the_loss(name: str) -> None:
    net = models.build_model(name, (2, 8, 8), 3, 4, (16,), torch_rng(0, "init"))
    again = models.build_model(name, (2, 8, 8), 3, 4, (16,), torch_rng(0, "init"))
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(),
                                                 again.state_dict().values(), strict=True))
    x = torch.randn(12, 2, 8, 8, generator=torch_rng(1, "x"))
    y = torch.arange(12) % 3
    assert net.features(x).ndim == 2 and net(x).shape == (12, 3)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(5):
        loss = nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses


def test_groupnorm_replaces_every_batchnorm() -> None:
    net = models.build_model("resnet18_gn", (2, 8, 8), 3, 64, (), torch_rng(0, "init"))
    norms = [m for m in net.modules() if isinstance(m, nn.GroupNorm)]
    assert len(norms) == 20 and not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    assert {m.num_groups for m in norms} == {32}                   # the paper's 32 at width 64
    assert [group_count(c) for c in (4, 8, 16, 32, 64, 512, 3)] == [2, 4, 8, 16, 32, 32, 1]
    assert not has_running_stats(net) and not models.get("resnet18_gn").channels_last


def test_the_resnet_without_normalization_starts_as_its_shortcut_path() -> None:
    net = models.build_model("resnet18_nn", (2, 8, 8), 3, 4, (), torch_rng(0, "init"))
    assert isinstance(net, NormFreeResNet18)
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm))
                   for m in net.modules())
    blocks = net.blocks()
    assert len(blocks) == 8 and all(b.alpha.item() == 0.0 for b in blocks)
    x = torch.randn(5, 2, 8, 8, generator=torch_rng(2, "x"))
    with torch.no_grad():
        h = net.relu(net.conv1(x))
        for block in blocks:
            h = torch.relu(block.shortcut(h))
        shortcut_only = net.fc(net.avgpool(h).flatten(1))
        assert torch.equal(net(x), shortcut_only)
        # ... and not vacuously: with the residual branches switched on, it is another network.
        for block in blocks:
            block.alpha.fill_(1.0)
        assert not torch.allclose(net(x), shortcut_only)


# -- the diagnosis -----------------------------------------------------------------------------

def test_feature_variance_ratio_is_0_for_class_features_and_near_1_for_noise() -> None:
    labels = torch.arange(300) % 3
    class_means = torch.randn(3, 8, generator=torch_rng(0, "m"))
    ratio = float(feature_variance_ratio(class_means[labels], labels, 3))
    assert ratio == pytest.approx(0.0, abs=1e-12)
    noise = torch.randn(300, 8, generator=torch_rng(0, "n"))
    assert 0.95 < float(feature_variance_ratio(noise, labels, 3)) <= 1.0
    mixed = class_means[labels] + 0.5 * noise
    assert 0.05 < float(feature_variance_ratio(mixed, labels, 3)) < 0.95
    assert np.isnan(float(feature_variance_ratio(torch.ones(10, 4), labels[:10], 3)))


class ChannelReader(ClassChannelNet):
    """Reads only the class channels: logit k = <class channels, v_k>."""

    def __init__(self, vectors: Tensor) -> None:
        super().__init__()
        self.register_buffer("vectors", vectors.flatten(1))
        self.channels = vectors.shape[1]
        self.head = nn.Identity()

    def features(self, x: Tensor) -> Tensor:
        vectors: Tensor = self.vectors
        return x[:, self.channels:].flatten(1) @ vectors.T


class AlwaysOne(ClassChannelNet):
    """Predicts class 1 whatever the input."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k
        self.head = nn.Identity()

    def features(self, x: Tensor) -> Tensor:
        return nn.functional.one_hot(torch.ones(len(x), dtype=torch.int64), self.k).float()


def test_channel_following_is_1_for_a_channel_reader_and_chance_for_a_constant(
        data: ClassChannelData) -> None:
    trainer = ResNetTrainer(data, ResNetRun("gen", "erm", 0), OPTIM, TINY)
    trainer.evaluation.model = ChannelReader(trainer.data.vectors)
    measured = trainer.diagnose()
    assert measured["channel_following"] == 1.0
    assert np.isnan(measured["test_error_recalibrated"])      # no running statistics
    trainer.evaluation.model = AlwaysOne(data.num_classes)
    shifted = (torch.as_tensor(data.y_test[:100]) + 1) % data.num_classes
    share = float((shifted == 1).double().mean())
    assert trainer.diagnose()["channel_following"] == pytest.approx(share)
    assert 0.5 / data.num_classes < share < 2.0 / data.num_classes
    following = channel_following(torch.tensor([0, 1, 2]), torch.tensor([0, 1, 0]))
    assert float(following) == pytest.approx(2 / 3)


def test_recalibration_changes_only_running_statistics(data: ClassChannelData) -> None:
    trainer = ResNetTrainer(data, ResNetRun("gen", "mixup", 0), OPTIM, TINY)
    trainer.train_epoch()
    model = trainer.model
    twin = recalibrated(model, [trainer.data.inputs(trainer.data.x_train[:100], None)])
    ours, theirs = model.state_dict(), twin.state_dict()
    stats = [k for k in ours if k.endswith(("running_mean", "running_var"))]
    assert stats and all(not torch.equal(ours[k], theirs[k]) for k in stats)
    assert all(torch.equal(ours[k], theirs[k]) for k in ours
               if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    assert twin.training is False


def test_the_diagnosis_leaves_the_runs_state_bit_identical(data: ClassChannelData,
                                                           tmp_path: Path) -> None:
    # A run that measures its diagnosis every epoch ends, bit for bit, where training alone ends.
    run = ResNetRun("gen", "mixup", 0)
    ckpt = tmp_path / "run.pt"
    history = train_resnet(data, run, OPTIM, TINY, checkpoint=ckpt)
    assert set(history.metrics) == set(METRICS)
    assert np.all(np.isfinite(history.metrics["test_error_recalibrated"]))
    plain = ResNetTrainer(data, run, OPTIM, TINY)
    for _ in range(OPTIM.epochs):
        plain.train_epoch()
        plain.test_error()
    saved = torch.load(ckpt, weights_only=True)["trainer"]
    before = copy.deepcopy(plain.state_dict())
    for key, value in plain.state_dict()["model"].items():
        assert torch.equal(saved["model"][key], value), key
    plain.diagnose()
    plain.diagnose()                      # the second reuses the recalibrated copy
    after = plain.state_dict()
    assert all(torch.equal(before["model"][k], v) for k, v in after["model"].items())
    assert before["order_rng"].equal(after["order_rng"])


# -- results with model and grid ---------------------------------------------------------------

def _run(model: str, method: str, grid: int, value: float, seed: int) -> xr.Dataset:
    metrics = {name: np.full(3, 0.1 * (grid + 1) + seed) for name in METRICS}
    return resnet_job_dataset(model, method, grid, value, seed, np.arange(1, 4), metrics,
                              {"seed": seed, "width": 4})


def test_results_with_models_and_grids_open_and_select_without_traps(tmp_path: Path) -> None:
    runs = [_run(model, method, g, v, s) for model in ("resnet18", "mlp")
            for method, values in (("erm", [0.0]), ("weight_decay", [5e-4, 5e-2]))
            for g, v in enumerate(values) for s in (0, 1)]
    ds = aggregate(runs)
    write_netcdf(ds, tmp_path / "r.nc")
    back = read_netcdf(tmp_path / "r.nc")
    assert back["test_error"].dims == (MODEL_DIM, METHOD_DIM, GRID_DIM, "seed", "epoch")
    one = back.sel(model="mlp", augmentation="weight_decay")        # keywords, as written
    np.testing.assert_allclose(one["hp_value"].values, [5e-4, 5e-2])
    np.testing.assert_allclose(one["test_error"].sel(seed=1).isel(epoch=0).values, [1.1, 1.2])
    erm = back.sel(augmentation="erm")
    assert np.isnan(erm["hp_value"].values[1]) and erm["test_error"].isel(grid=1).isnull().all()
    assert "seed" not in back.attrs


def test_an_older_class_channel_result_loads_in_todays_layout(tmp_path: Path) -> None:
    # As labaug wrote Fig. 4's results before models and value lists: (augmentation, seed,
    # epoch), the model in words, each method's value in the stored config.
    config = {"resnet": {"hp": {"weight_decay": 5e-4, "mixup": 1.0}}}
    old = xr.Dataset(
        {"test_error": (("augmentation", "seed", "epoch"), np.full((2, 2, 3), 0.4))},
        coords={"augmentation": ["weight_decay", "mixup"], "seed": [0, 1], "epoch": [1, 2, 3]},
        attrs={"model": "ReLU MLP, hidden 256", "config": json.dumps(config)})
    old.to_netcdf(tmp_path / "old.nc")
    ds = read_netcdf(tmp_path / "old.nc")
    assert ds["test_error"].dims == (MODEL_DIM, METHOD_DIM, GRID_DIM, "seed", "epoch")
    assert list(ds[MODEL_DIM].values) == ["mlp"]
    np.testing.assert_allclose(ds["hp_value"].values[:, 0], [5e-4, 1.0])
    assert ds.attrs["model_description"] == "ReLU MLP, hidden 256"
    old.attrs = {"model": "a model of its own"}
    old.to_netcdf(tmp_path / "unknown.nc")
    with pytest.raises(OutdatedResultError, match=r"unknown.nc.*--forcerun train_resnet"):
        read_netcdf(tmp_path / "unknown.nc")
    # An older linear sweep's hp dimension reads as grid.
    sweep = xr.Dataset({"test_error": (("augmentation", "hp", "seed"), np.zeros((1, 2, 1)))},
                       coords={"augmentation": ["mixup"], "hp": [0, 1], "seed": [0]})
    sweep.to_netcdf(tmp_path / "sweep.nc")
    assert read_netcdf(tmp_path / "sweep.nc")["test_error"].dims == (METHOD_DIM, GRID_DIM, "seed")


def test_an_older_checkpoint_retrains_and_says_why(data: ClassChannelData, tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    # As labaug wrote checkpoints before fingerprints and checksums: three metrics, no seal.
    ckpt = tmp_path / "seed0.pt"
    train_resnet(data, ResNetRun("gen", "erm", 0), replace(OPTIM, epochs=1), TINY,
                 checkpoint=ckpt)
    state = {k: v for k, v in torch.load(ckpt, weights_only=True).items() if k != "sha256"}
    state["metrics"] = {k: state["metrics"][k] for k in ("test_error", "train_loss",
                                                        "train_error")}
    torch.save(state, ckpt)
    with caplog.at_level("WARNING", logger="labaug.train.resnet"):
        history = train_resnet(data, ResNetRun("gen", "erm", 0), replace(OPTIM, epochs=1),
                               TINY, checkpoint=ckpt)
    assert "it carries no checksum (written by an older labaug)" in caplog.text
    assert f"moved it to {ckpt}.corrupt and starting afresh" in caplog.text
    assert set(history.metrics) == set(METRICS)
    # A checkpoint of this version but of other settings retrains and names them.
    caplog.clear()
    with caplog.at_level("WARNING", logger="labaug.train.resnet"):
        train_resnet(data, ResNetRun("gen", "erm", 0), replace(OPTIM, epochs=1),
                     replace(TINY, diagnosis_subset=50), checkpoint=ckpt)
    assert "is of other settings (diagnosis_subset: 100 -> 50); training afresh" in caplog.text


# -- on a GPU ----------------------------------------------------------------------------------

@pytest.mark.parametrize("device", ["cpu", ON_CUDA])
@pytest.mark.parametrize("name", models.names())
def test_every_model_trains_and_is_diagnosed_on_the_device(name: str, device: str,
                                                           data: ClassChannelData) -> None:
    resnet = replace(TINY, models=(name,))
    history = train_resnet(data, ResNetRun("gen", "cutmix", 0, model=name), OPTIM, resnet,
                           device=device)
    for metric in ("train_loss", "test_error", "channel_following", "feature_variance_ratio"):
        assert np.all(np.isfinite(history.metrics[metric])), (metric, history.metrics[metric])
    recal = history.metrics["test_error_recalibrated"]
    assert np.all(np.isfinite(recal)) if name == "resnet18" else np.all(np.isnan(recal))
