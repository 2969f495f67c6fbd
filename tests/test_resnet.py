"""ResNet-18 with class channels: model, losses, the augmented batches, fitting, resuming, NaNs."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.models.resnet import BasicBlock

from labaug import augment
from labaug.augment.label_smoothing import smooth
from labaug.augment.mixup import mix
from labaug.config import Method, defaults
from labaug.data.channels import ClassChannelData, class_channel_data
from labaug.data.raw import RawImages
from labaug.losses import one_hot, soft_cross_entropy
from labaug.models.nets import CifarResNet18, resnet18
from labaug.rng import torch_rng
from labaug.train.checkpoints import checkpoint_path, load_optimizer_state
from labaug.train.inject import injected_nan_epoch
from labaug.train.resnet import (
    NonFiniteLossError,
    ResNetRun,
    ResNetTrainer,
    duration,
    train_resnet,
)

torch.set_num_threads(1)

METHODS: list[Method] = augment.for_experiment(augment.names(), "class_channels")


def separable_raw(n_train: int = 240, n_test: int = 120, k: int = 3, seed: int = 0) -> RawImages:
    """Noise images where class j has a bright band in rows 2j, 2j+1: trivially separable."""
    rng = np.random.default_rng(seed)

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, k, n).astype(np.int64)
        x = rng.integers(0, 100, (n, 1, 8, 8)).astype(np.uint8)
        for j in range(k):
            x[y == j, 0, 2 * j:2 * j + 2, :] = 250
        return x, y

    (xtr, ytr), (xte, yte) = make(n_train), make(n_test)
    return RawImages(xtr, ytr, xte, yte, tuple(f"c{j}" for j in range(k)))


@pytest.fixture(scope="module")
def data() -> ClassChannelData:
    return class_channel_data(separable_raw(), "gen", 0)


OPTIM = replace(defaults().optim, batch_size=60, epochs=3)
# checkpoint_minutes = 0: a checkpoint after every epoch (the resume tests stop runs part-way).
TINY = replace(defaults().resnet, datasets=("gen",), width=4, checkpoint_minutes=0.0)


# -- model -----------------------------------------------------------------------------------

def test_model_is_cifar_resnet18_from_torchvision_blocks() -> None:
    m = resnet18(6, 10, 8, torch_rng(0, "init"))
    assert m.conv1.kernel_size == (3, 3) and m.conv1.stride == (1, 1)
    assert m.conv1.in_channels == 6 and isinstance(m.maxpool, torch.nn.Identity)
    widths = [layer[0].conv1.out_channels for layer in (m.layer1, m.layer2, m.layer3, m.layer4)]
    assert widths == [8, 16, 32, 64]
    assert all(len(layer) == 2 and all(isinstance(b, BasicBlock) for b in layer)
               for layer in (m.layer1, m.layer2, m.layer3, m.layer4))
    assert m.fc.out_features == 10
    assert m(torch.zeros(2, 6, 32, 32)).shape == (2, 10)
    # The standard width: 11.17M parameters, as the usual CIFAR ResNet-18 (built without memory).
    with torch.device("meta"):
        full = CifarResNet18(6, 10, 64)
    assert sum(p.numel() for p in full.parameters()) == 11_175_690


def test_model_init_is_seeded() -> None:
    a = resnet18(2, 3, 4, torch_rng(0, "init")).state_dict()
    b = resnet18(2, 3, 4, torch_rng(0, "init")).state_dict()
    c = resnet18(2, 3, 4, torch_rng(1, "init")).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["conv1.weight"], c["conv1.weight"])
    assert torch.equal(a["bn1.running_var"], torch.ones(4))


# -- losses, by hand --------------------------------------------------------------------------

def test_soft_cross_entropy_hand_values() -> None:
    logits = torch.tensor([[0.0, 0.0, 0.0], [2.0, 0.0, -1.0]], dtype=torch.float64)
    onehot = one_hot(torch.tensor([1, 0]), 3).to(torch.float64)
    # row 0: -log(1/3); row 1: -log(e^2 / (e^2 + 1 + e^-1))
    z = np.exp(2.0) + 1.0 + np.exp(-1.0)
    expected = (np.log(3.0) + (np.log(z) - 2.0)) / 2
    assert soft_cross_entropy(logits, onehot).item() == pytest.approx(expected, rel=1e-12)


def test_label_smoothing_hand_values() -> None:
    t = smooth(one_hot(torch.tensor([2]), 4).to(torch.float64), 0.1, 4)
    torch.testing.assert_close(t, torch.tensor([[0.025, 0.025, 0.925, 0.025]],
                                               dtype=torch.float64))
    logits = torch.tensor([[1.0, -0.5, 0.3, 2.0]], dtype=torch.float64)
    logp = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    by_hand = -(0.025 * (logp[0, 0] + logp[0, 1] + logp[0, 3]) + 0.925 * logp[0, 2])
    loss = soft_cross_entropy(logits, t)
    assert loss.item() == pytest.approx(by_hand.item(), rel=1e-12)
    ref = F.cross_entropy(logits, torch.tensor([2]), label_smoothing=0.1)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-12)


def test_mixup_hand_values() -> None:
    x = torch.tensor([[1.0, 2.0], [3.0, 5.0]])
    t = one_hot(torch.tensor([0, 1]), 2)
    lam = torch.tensor([[0.25], [0.5]])
    perm = torch.tensor([1, 0])
    torch.testing.assert_close(mix(x, lam, perm), torch.tensor([[2.5, 4.25], [2.0, 3.5]]))
    torch.testing.assert_close(mix(t, lam, perm), torch.tensor([[0.25, 0.75], [0.5, 0.5]]))
    logits = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    q = mix(t.to(torch.float64), lam.to(torch.float64), perm)
    lse = np.log(1 + np.e)
    by_hand = (0.25 * lse + 0.75 * (lse - 1) + 0.5 * (lse - 1) + 0.5 * lse) / 2
    assert soft_cross_entropy(logits, q).item() == pytest.approx(by_hand, rel=1e-12)


def test_weight_decay_is_adams_coupled_l2() -> None:
    """One Adam(weight_decay=l) step equals one plain Adam step on loss + l/2 ||w||^2."""
    w0 = torch.tensor([0.5, -1.5, 2.0], dtype=torch.float64)
    g = torch.tensor([0.1, 0.2, -0.3], dtype=torch.float64)
    lam, lr = 5e-4, 1e-3
    w = w0.clone().requires_grad_(True)
    opt = torch.optim.Adam([w], lr=lr, weight_decay=lam)
    torch.autograd.backward((w * g).sum())
    opt.step()
    # By hand: the first Adam step moves each coordinate by -lr * sign(grad) (bias-corrected).
    grad = g + lam * w0
    expected = w0 - lr * grad / (grad.abs() + 1e-8)
    torch.testing.assert_close(w.detach(), expected, rtol=0, atol=1e-12)


# -- the augmented batches --------------------------------------------------------------------

def _batches(data: ClassChannelData, method: Method, per_batch: bool = False
             ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    tr = ResNetTrainer(data, ResNetRun("gen", method, 0), OPTIM, TINY, mix_per_batch=per_batch)
    return list(tr._batches())


@pytest.mark.parametrize("method", [m for m in METHODS if not augment.get(m).needs_partner])
def test_batches_cover_the_training_set_with_the_right_class_channels(
        data: ClassChannelData, method: Method) -> None:
    v = torch.as_tensor(data.class_vectors)
    batches = _batches(data, method)
    assert len(batches) == 4 and all(x.shape == (60, 2, 8, 8) for x, _ in batches)
    xs = torch.cat([x for x, _ in batches])
    ys = torch.cat([t.argmax(dim=1) for _, t in batches])
    # Every training image appears once, with the vector of its own class.
    assert sorted(xs[:, 0].sum(dim=(1, 2)).tolist()) == pytest.approx(
        sorted(torch.as_tensor(data.x_train)[:, 0].sum(dim=(1, 2)).tolist()), rel=1e-5)
    torch.testing.assert_close(xs[:, 1:], v[ys], rtol=0, atol=0)
    t = torch.cat([t for _, t in batches])
    a = TINY.values(method)[0]
    top = 1.0 - a + a / 3 if method == "label_smoothing" else 1.0
    torch.testing.assert_close(t.max(dim=1).values, torch.full((240,), top))


@pytest.mark.parametrize("per_batch", [False, True])
def test_mixup_mixes_whole_inputs_and_targets(data: ClassChannelData, per_batch: bool) -> None:
    v = torch.as_tensor(data.class_vectors)
    for x, t in _batches(data, "mixup", per_batch):
        # The class channels are linear in the one-hot target, so a mixed input's class
        # channels equal sum_k q_k v_k for its mixed target q.
        torch.testing.assert_close(x[:, 1:], torch.einsum("bk,kchw->bchw", t, v),
                                   rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(t.sum(dim=1), torch.ones(len(t)))
        weights = t.max(dim=1).values
        spread = weights.max() - weights.min()
        if per_batch:
            pure = weights > 1 - 1e-6        # partner of the same class: target stays one-hot
            assert (weights[~pure].max() - weights[~pure].min()).item() < 1e-6
        else:
            assert spread.item() > 0.1


def _is_box(mask: torch.Tensor) -> bool:
    """Whether a boolean (H, W) mask is one axis-aligned rectangle (or empty)."""
    rows, cols = mask.any(dim=1), mask.any(dim=0)
    return bool(torch.equal(mask, rows[:, None] & cols[None, :]))


@pytest.mark.parametrize("per_batch", [False, True])
def test_cutmix_pastes_a_box_of_whole_pixels_weighted_by_its_area(
        data: ClassChannelData, per_batch: bool) -> None:
    # Every pixel of an input (image and class channel alike) comes from the example or from
    # its partner, so its class channel is the vector of one of the target's two classes (the
    # vectors are continuous draws, distinct at every pixel); the share of pixels that carry
    # class k's vector is exactly the target's weight on class k, and the pasted part is a box.
    v = torch.as_tensor(data.class_vectors)[:, 0]          # (K, H, W)
    mixed = 0
    for x, t in _batches(data, "cutmix", per_batch):
        torch.testing.assert_close(t.sum(dim=1), torch.ones(len(t)))
        weights = []
        for xi, ti in zip(x, t, strict=True):
            classes = torch.nonzero(ti > 0).flatten()
            assert 1 <= len(classes) <= 2
            carries = torch.stack([xi[1] == v[k] for k in classes])   # (classes, H, W)
            assert bool(carries.sum(dim=0).eq(1).all())
            torch.testing.assert_close(carries.double().mean(dim=(1, 2)),
                                       ti[classes].double(), rtol=0, atol=1e-6)
            if len(classes) == 2:
                mixed += 1
                assert _is_box(carries[0]) or _is_box(carries[1])
                weights.append(sorted(ti[classes].tolist()))
        if per_batch and weights:       # one box for the whole batch: one pair of weights
            assert all(w == pytest.approx(weights[0]) for w in weights)
    assert mixed > 60


# -- training ---------------------------------------------------------------------------------

def test_fits_a_trivially_separable_task() -> None:
    # sigma = 0: the class channels carry nothing, so the band is the only thing to learn.
    d = class_channel_data(separable_raw(), "gen", 0, sigma=0.0)
    h = train_resnet(d, ResNetRun("gen", "weight_decay", 0), replace(OPTIM, epochs=8), TINY)
    assert h.train_loss[-1] < 0.5 * h.train_loss[0]
    assert h.train_error[-1] <= 0.02
    assert h.test_error[-1] <= 0.05


def test_each_epoch_line_says_how_long_the_rest_will_take(
        data: ClassChannelData, caplog: pytest.LogCaptureFixture) -> None:
    assert [duration(s) for s in (0.4, 42, 59.6, 60, 1010, 3600, 3 * 3600 + 5 * 60 + 29,
                                  86399, 2 * 86400 + 7 * 3600 + 1800)] == [
        "0 s", "42 s", "1 min", "1 min", "17 min", "1 h 00 min", "3 h 05 min", "23 h 59 min",
        "2 d 07 h"]
    with caplog.at_level("INFO", logger="labaug.train.resnet"):
        train_resnet(data, ResNetRun("gen", "weight_decay", 0), OPTIM, TINY)
    lines = [r.getMessage() for r in caplog.records if " epoch " in r.getMessage()]
    assert len(lines) == 3
    # Each line gives the paper's test error, the diagnosis, and the seconds of each part.
    assert all(re.search(r"test error [\d.]+, recalibrated [\d.]+, channel following [\d.]+, "
                         r"feature variance ratio [\d.]+ \(", line) for line in lines), lines
    assert all(re.search(r"train img/s; test [\d.]+ s, diagnosis [\d.]+ s; about \d+ s left\)$",
                         line) for line in lines[:2]), lines
    assert re.search(r"diagnosis [\d.]+ s\)$", lines[2]), lines[2]


ON_CUDA = pytest.param("cuda", marks=[
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(),
                       reason="needs a CUDA GPU: torch.cuda.is_available() is False here")])


@pytest.mark.parametrize("device", ["cpu", ON_CUDA])
def test_the_compiled_path_matches_eager_and_compiles_once(
        device: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # resnet.compile, also on the CPU (Inductor's C++ backend), so the path runs without a GPU:
    # in fp32 (no TF32 on a GPU) the first step's loss is eager's to a relative 1e-4 (Inductor
    # fuses and orders sums differently). Then, at the device's own precision and across epochs
    # that switch train/eval and end in a partial batch (250 images at batch 60: four compiled
    # batches and a partial one, run eagerly), nothing compiles again.
    from torch._dynamo.utils import counters

    if device == "cuda":
        monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
        monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    data = class_channel_data(separable_raw(n_train=250), "gen", 0)
    run = ResNetRun("gen", "mixup", 0)
    losses = []
    for compiled in (False, True):
        tr = ResNetTrainer(data, run, OPTIM, TINY, device=device, precision="fp32",
                           compile_model=compiled)
        tr.model.train()
        x, t = next(tr._batches())
        assert len(t) == OPTIM.batch_size
        losses.append(soft_cross_entropy(tr.train_forward(x).float(), t).item())
    assert losses[1] == pytest.approx(losses[0], rel=1e-4)
    tr = ResNetTrainer(data, run, OPTIM, TINY, device=device, compile_model=True)
    tr.train_epoch()
    tr.test_error()
    graphs = counters["stats"]["unique_graphs"]
    for _ in range(2):
        loss, _ = tr.train_epoch()
        tr.test_error()
        assert np.isfinite(loss)
    assert counters["stats"]["unique_graphs"] == graphs > 0


class _Killed(Exception):
    pass


@pytest.mark.parametrize("method", METHODS)
def test_killed_run_resumes_to_identical_metrics(
        data: ClassChannelData, method: Method, tmp_path: Path) -> None:
    run = ResNetRun("gen", method, 1)
    whole = train_resnet(data, run, OPTIM, TINY, checkpoint=tmp_path / "a.pt")

    def kill_after_two(epoch: int) -> None:
        if epoch == 2:
            raise _Killed

    ckpt = tmp_path / "b.pt"
    with pytest.raises(_Killed):
        train_resnet(data, run, OPTIM, TINY, checkpoint=ckpt, on_epoch=kill_after_two)
    assert torch.load(ckpt, weights_only=True)["epoch"] == 2
    resumed = train_resnet(data, run, OPTIM, TINY, checkpoint=ckpt)
    for name in ("test_error", "train_loss", "train_error"):
        np.testing.assert_array_equal(getattr(resumed, name), getattr(whole, name))
    np.testing.assert_array_equal(resumed.epoch, [1, 2, 3])
    a = torch.load(tmp_path / "a.pt", weights_only=True)["trainer"]["model"]
    b = torch.load(ckpt, weights_only=True)["trainer"]["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("saved_fused, resumed_fused", [(False, True), (True, False)])
def test_optimizer_state_resumes_across_fused_and_plain_adam(
        saved_fused: bool, resumed_fused: bool, tmp_path: Path) -> None:
    # CUDA trains with fused Adam, the CPU with the plain one: a checkpoint of either resumes in
    # the other, keeps the resuming optimizer's implementation, and continues the same steps.
    def adam(fused: bool) -> tuple[torch.nn.Parameter, torch.optim.Adam]:
        param = torch.nn.Parameter(torch.linspace(-1.0, 1.0, 5))
        return param, torch.optim.Adam([param], lr=0.1, weight_decay=0.01, fused=fused or None)

    def step(param: torch.nn.Parameter, opt: torch.optim.Adam, k: int) -> None:
        param.grad = torch.sin(3.0 * param.detach() + k)
        opt.step()

    ref, ref_opt = adam(saved_fused)
    for k in range(4):
        step(ref, ref_opt, k)
    first, first_opt = adam(saved_fused)
    step(first, first_opt, 0)
    step(first, first_opt, 1)
    torch.save({"model": first.detach(), "optimizer": first_opt.state_dict()}, tmp_path / "s.pt")
    saved = torch.load(tmp_path / "s.pt", map_location="cpu", weights_only=True)

    second, second_opt = adam(resumed_fused)
    with torch.no_grad():
        second.copy_(saved["model"])
    load_optimizer_state(second_opt, saved["optimizer"])
    assert bool(second_opt.param_groups[0]["fused"]) == resumed_fused
    steps = second_opt.state[second]["step"]
    assert steps.device == second.device and float(steps) == 2.0
    if resumed_fused:
        assert steps.dtype == torch.float32
    step(second, second_opt, 2)
    step(second, second_opt, 3)
    torch.testing.assert_close(second.detach(), ref.detach(), rtol=0, atol=1e-6)


def test_optimizer_state_takes_the_layout_of_its_channels_last_weights(tmp_path: Path) -> None:
    # A CPU checkpoint (contiguous weights) resumed on CUDA (channels_last weights): fused Adam on
    # CUDA refuses moment estimates whose strides differ from the weight's, so they are
    # converted on load, with their values kept.
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 3)
    opt = torch.optim.Adam(conv.parameters())
    conv(torch.randn(2, 3, 8, 8)).sum().backward()
    opt.step()
    torch.save(opt.state_dict(), tmp_path / "o.pt")
    saved = torch.load(tmp_path / "o.pt", weights_only=True)

    resumed = torch.nn.Conv2d(3, 4, 3).to(memory_format=torch.channels_last)
    resumed_opt = torch.optim.Adam(resumed.parameters(), fused=True)
    load_optimizer_state(resumed_opt, saved)
    weight = resumed.weight
    assert not weight.is_contiguous() and weight.is_contiguous(memory_format=torch.channels_last)
    for key in ("exp_avg", "exp_avg_sq"):
        moment = resumed_opt.state[weight][key]
        assert moment.stride() == weight.stride(), key
        torch.testing.assert_close(moment, opt.state[conv.weight][key], rtol=0, atol=0)


def test_checkpoint_from_other_settings_is_not_resumed(
        data: ClassChannelData, tmp_path: Path) -> None:
    ckpt = tmp_path / "c.pt"
    run = ResNetRun("gen", "weight_decay", 0)
    train_resnet(data, run, OPTIM, TINY, checkpoint=ckpt, epochs=1)
    fresh = train_resnet(data, run, OPTIM, replace(TINY, width=2), epochs=1)
    other = train_resnet(data, run, OPTIM, replace(TINY, width=2), epochs=1, checkpoint=ckpt)
    np.testing.assert_array_equal(other.train_loss, fresh.train_loss)


def test_injected_nan_names_the_run_and_epoch(data: ClassChannelData, tmp_path: Path) -> None:
    run = ResNetRun("gen", "mixup", 2)
    env = {"LABAUG_INJECT_NAN": "gen:weight_decay:2:1, gen:mixup:2:2"}
    epoch = injected_nan_epoch(run, env)
    assert epoch == 2
    assert injected_nan_epoch(ResNetRun("gen", "mixup", 3), env) is None
    assert injected_nan_epoch(run, {}) is None
    with pytest.raises(ValueError, match="LABAUG_INJECT_NAN"):
        injected_nan_epoch(run, {"LABAUG_INJECT_NAN": "gen:mixup"})
    ckpt = tmp_path / "n.pt"
    with pytest.raises(NonFiniteLossError,
                       match=r"dataset=gen model=resnet18 method=mixup seed=2 at epoch 2"):
        train_resnet(data, run, OPTIM, TINY, nan_epoch=epoch, checkpoint=ckpt)
    # The failed epoch wrote no checkpoint: the last good one (epoch 1) is kept.
    assert torch.load(ckpt, weights_only=True)["epoch"] == 1


def test_checkpoint_path_mirrors_the_result_path() -> None:
    assert checkpoint_path("results/resnet/fmnist/mixup/seed3.nc") == Path(
        "checkpoints/resnet/fmnist/mixup/seed3.pt")
    assert checkpoint_path("/x/results/resnet/c/wd/seed0.nc") == Path(
        "/x/checkpoints/resnet/c/wd/seed0.pt")


# -- jobs: per-run netCDF, aggregation, Fig. 4 and Fig. 5 --------------------------------------

def test_jobs_write_the_result_contract_and_draw_figs_4_5_and_8(tmp_path: Path) -> None:
    import xarray as xr

    from labaug import plots
    from labaug.data.raw import save_npz
    from labaug.jobs import aggregate_job, class_channel_example_job, resnet_job
    from labaug.results import GRID_DIM, METHOD_DIM, MODEL_DIM, RESNET_VARIABLES
    from tests.conftest import merged_config

    raw_path = tmp_path / "data" / "raw" / "fmnist.npz"
    save_npz(separable_raw(n_train=120, n_test=60), raw_path)
    config = merged_config()
    config["seeds"] = [0, 1]
    config["methods"] = ["erm", *config["methods"]]
    config["resnet"].update({"datasets": ["fmnist"], "width": 2, "epochs": 2, "batch_size": 60,
                             "device": "cpu", "models": ["resnet18", "mlp"],
                             "mlp_hidden": [8], "diagnosis_subset": 40})
    config["resnet"]["hp"]["weight_decay"] = [5e-4, 5e-2]
    methods = augment.for_experiment(config["methods"], "class_channels")
    assert sorted(methods) == sorted(METHODS)   # every class-channel method, ERM too
    paths = []
    for model in config["resnet"]["models"]:
        for method in methods:
            for grid in range(2 if method == "weight_decay" else 1):
                for seed in (0, 1):
                    out = (tmp_path / "results" / "resnet" / "fmnist" / model / method
                           / f"grid{grid}" / f"seed{seed}.nc")
                    ckpt = checkpoint_path(out)
                    assert ckpt == (tmp_path / "checkpoints" / "resnet" / "fmnist" / model
                                    / method / f"grid{grid}" / f"seed{seed}.pt")
                    resnet_job(config, "fmnist", method, seed, out, raw_path, model=model,
                               grid=grid)
                    # Once done, the checkpoint shrinks to the final state: metrics, no weights.
                    assert "trainer" not in torch.load(ckpt, weights_only=True)
                    paths.append(out)
    with xr.open_dataset(paths[0]) as one:
        assert dict(one.sizes) == {MODEL_DIM: 1, METHOD_DIM: 1, GRID_DIM: 1, "seed": 1,
                                   "epoch": 2}
        assert one.attrs["seed"] == 0 and one.attrs["device"] == "cpu"
        assert one.attrs["precision"] == "fp32" and one.attrs["device_name"]
        assert one.attrs["device_setting"] == config["resnet"]["device"]
        assert one.attrs["model_description"] == "ResNet-18, width 2"
        assert one.attrs["n_diagnosis"] == 40 and one.attrs["num_classes"] == 3
        assert float(one["hp_value"].squeeze()) == 0.0        # ERM has no hyperparameter
        assert "config_sha256" in one.attrs and "git_commit" in one.attrs
        assert set(one.data_vars) == set(RESNET_VARIABLES)
        assert all(one[v].attrs["long_name"] == RESNET_VARIABLES[v] for v in RESNET_VARIABLES)
    agg = tmp_path / "results" / "resnet" / "fmnist.nc"
    aggregate_job(config, paths, agg, "class_channels")
    with xr.open_dataset(agg) as ds:
        dims = (MODEL_DIM, METHOD_DIM, GRID_DIM, "seed", "epoch")
        assert all(ds[v].dims == dims for v in RESNET_VARIABLES)
        assert list(ds[MODEL_DIM].values) == ["resnet18", "mlp"]     # config order
        assert list(ds[METHOD_DIM].values) == methods
        assert ds["hp_value"].dims == (METHOD_DIM, GRID_DIM)
        wd = ds.sel(augmentation="weight_decay", model="mlp")
        np.testing.assert_allclose(wd["hp_value"].values, [5e-4, 5e-2])
        assert np.isnan(ds.sel(augmentation="mixup")["hp_value"].values[1])   # NaN-padded
        assert ds.sel(augmentation="mixup", model="mlp")["test_error"].isel(
            grid=1).isnull().all()
        assert list(ds["seed"].values) == [0, 1] and list(ds["epoch"].values) == [1, 2]
        measured = ds.isel(grid=0).sel(augmentation=methods)
        for name in ("test_error", "channel_following", "feature_variance_ratio"):
            values = measured[name].values
            assert np.all((values >= 0) & (values <= 1)), name
        # Recalibration exists for the BatchNorm model only.
        assert measured["test_error_recalibrated"].sel(model="resnet18").notnull().all()
        assert measured["test_error_recalibrated"].sel(model="mlp").isnull().all()
    for figure in ("fig4", "fig8"):
        getattr(plots, figure)(out=tmp_path / f"{figure}.pdf", fmnist=agg)
        assert (tmp_path / f"{figure}.pdf").read_bytes()[:5] == b"%PDF-"

    example = tmp_path / "results" / "resnet" / "fmnist_example.nc"
    class_channel_example_job(config, "fmnist", raw_path, example)
    with xr.open_dataset(example) as ex:
        label = int(ex.attrs["label"])
        vectors = class_channel_data(separable_raw(n_train=120, n_test=60), "fmnist", 0)
        np.testing.assert_allclose(ex["class_vector"].values, vectors.class_vectors[label])
        np.testing.assert_allclose(ex["train_input"].values[1], vectors.class_vectors[label][0])
        assert not np.any(ex["test_input"].values[1])
        np.testing.assert_allclose(ex["test_input"].values[0], ex["train_input"].values[0])
    plots.fig5(out=tmp_path / "fig5.pdf", example=example)
    assert (tmp_path / "fig5.pdf").read_bytes()[:5] == b"%PDF-"


def test_the_cuda_path_channels_last_bf16_runs_and_learns_on_cpu() -> None:
    """The GPU settings (channels_last, bf16 autocast, fp32 weights), exercised on the CPU."""
    d = class_channel_data(separable_raw(), "gen", 0, sigma=0.0)
    for method in METHODS:
        tr = ResNetTrainer(d, ResNetRun("gen", method, 0), OPTIM, TINY, precision="bf16")
        assert tr.precision == "bf16" and tr.channels_last
        conv1 = tr.model.conv1
        assert isinstance(conv1, torch.nn.Conv2d)
        assert conv1.weight.dtype == torch.float32
        assert conv1.weight.is_contiguous(memory_format=torch.channels_last)
        x, _ = next(tr._batches())
        assert x.is_contiguous(memory_format=torch.channels_last), method
    h = train_resnet(d, ResNetRun("gen", "weight_decay", 0), replace(OPTIM, epochs=8), TINY,
                     precision="bf16")
    assert h.train_error[-1] <= 0.05 and h.test_error[-1] <= 0.1
