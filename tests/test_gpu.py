"""The CUDA paths of the ResNet trainer and the linear sweep, on a real GPU (`pytest -m gpu`);
skipped without one.

Tolerances, stated once: fp32 on CUDA vs the CPU runs with TF32 switched off, and the epoch losses
of a few steps agree to a relative 1e-3 (summation order differs: cuDNN vs oneDNN kernels); the
weights agree to an absolute 1e-2, since Adam moves each coordinate by about lr = 1e-3 per step
whatever the size of its gradient, so a gradient near zero may step the other way. A linear
sweep on CUDA and on the CPU agrees to the same tolerances. The compiled path is checked on both
devices by tests/test_resnet.py (its cuda case is marked `gpu` as well).
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from labaug.data.channels import ClassChannelData, class_channel_data
from labaug.devices import native_bf16
from labaug.train.resnet import ResNetRun, ResNetTrainer, train_resnet
from tests.conftest import REPO
from tests.test_resnet import OPTIM, TINY, separable_raw

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(),
                       reason="needs a CUDA GPU: torch.cuda.is_available() is False here"),
]

RUN = ResNetRun("gen", "mixup", 0)


@pytest.fixture(scope="module")
def data() -> ClassChannelData:
    return class_channel_data(separable_raw(), "gen", 0)


@pytest.fixture
def no_tf32() -> Iterator[None]:
    """Plain fp32 convolutions and matmuls on the GPU, as on the CPU."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def test_fp32_steps_on_cuda_agree_with_the_cpu(data: ClassChannelData, no_tf32: None) -> None:
    runs = {}
    for device in ("cpu", "cuda"):
        trainers: list[ResNetTrainer] = []
        h = train_resnet(data, RUN, replace(OPTIM, epochs=2), TINY, device=device,
                         precision="fp32", trainer_out=trainers)
        tr = trainers[0]
        assert tr.precision == "fp32" and tr.device.type == device
        runs[device] = (h, {k: v.detach().cpu() for k, v in tr.model.state_dict().items()})
    (cpu, w_cpu), (gpu, w_gpu) = runs["cpu"], runs["cuda"]
    np.testing.assert_allclose(gpu.train_loss, cpu.train_loss, rtol=1e-3)
    for key, value in w_cpu.items():
        if value.is_floating_point():
            torch.testing.assert_close(w_gpu[key], value, rtol=0, atol=1e-2, msg=key)
    assert runs["cuda"][0].test_error.shape == (2,)


@pytest.mark.parametrize("precision", ["auto", "bf16", "fp16"])
def test_mixed_precision_trains(precision: str) -> None:
    if precision == "bf16" and not native_bf16():
        pytest.skip("this GPU has no native bf16")
    d = class_channel_data(separable_raw(), "gen", 0, sigma=0.0)
    trainers: list[ResNetTrainer] = []
    h = train_resnet(d, ResNetRun("gen", "weight_decay", 0), replace(OPTIM, epochs=8), TINY,
                     device="cuda", precision=precision, trainer_out=trainers)
    tr = trainers[0]
    expected = ("bf16" if native_bf16() else "fp16") if precision == "auto" \
        else precision
    assert tr.precision == expected
    assert tr.scaler.is_enabled() == (expected == "fp16")
    assert tr.model.conv1.weight.dtype == torch.float32                 # fp32 master weights
    assert tr.data.x_train.is_contiguous(memory_format=torch.channels_last)  # stored once
    assert all(np.isfinite(h.train_loss)) and all(np.isfinite(h.test_error))
    assert h.train_loss[-1] < 0.5 * h.train_loss[0]
    assert h.train_error[-1] <= 0.05 and h.test_error[-1] <= 0.1


def test_a_cuda_checkpoint_resumes_on_cuda_and_on_the_cpu(data: ClassChannelData,
                                                          tmp_path: Path) -> None:
    first = tmp_path / "cuda.pt"
    one = train_resnet(data, RUN, replace(OPTIM, epochs=1), TINY, device="cuda",
                       checkpoint=first)
    assert torch.load(first, weights_only=True)["epoch"] == 1
    for device in ("cuda", "cpu"):
        ckpt = tmp_path / f"resume_{device}.pt"
        shutil.copy(first, ckpt)
        trainers: list[ResNetTrainer] = []
        h = train_resnet(data, RUN, replace(OPTIM, epochs=2), TINY, device=device,
                         checkpoint=ckpt, trainer_out=trainers)
        # Resumed, not restarted: epoch 1's metrics are the checkpoint's.
        np.testing.assert_array_equal(h.train_loss[:1], one.train_loss)
        assert np.isfinite(h.train_loss[1])
        assert torch.load(ckpt, weights_only=True)["epoch"] == 2
        assert trainers[0].device.type == device


def test_a_cpu_checkpoint_resumes_on_cuda(data: ClassChannelData, tmp_path: Path) -> None:
    # Plain Adam on the CPU, fused Adam on CUDA: the step counts move to the GPU as float32.
    ckpt = tmp_path / "cpu.pt"
    one = train_resnet(data, RUN, replace(OPTIM, epochs=1), TINY, device="cpu", checkpoint=ckpt)
    trainers: list[ResNetTrainer] = []
    h = train_resnet(data, RUN, replace(OPTIM, epochs=2), TINY, device="cuda", checkpoint=ckpt,
                     trainer_out=trainers)
    np.testing.assert_array_equal(h.train_loss[:1], one.train_loss)
    assert np.isfinite(h.train_loss[1])
    opt = trainers[0].opt
    assert opt.param_groups[0]["fused"]
    steps = [s["step"] for s in opt.state.values()]
    assert steps and all(s.is_cuda and s.dtype == torch.float32 for s in steps)


def test_a_resnet_job_on_cuda_records_gpu_and_precision(tmp_path: Path) -> None:
    import xarray as xr

    from labaug.data.raw import save_npz
    from labaug.jobs import resnet_job
    from tests.conftest import merged_config

    raw = tmp_path / "data" / "raw" / "fmnist.npz"
    save_npz(separable_raw(n_train=120, n_test=60), raw)
    config = merged_config()
    config["resnet"].update({"datasets": ["fmnist"], "width": 2, "epochs": 1, "batch_size": 60,
                             "device": "auto"})
    out = tmp_path / "results" / "resnet" / "fmnist" / "mixup" / "seed0.nc"
    resnet_job(config, "fmnist", "mixup", 0, out, raw)
    with xr.open_dataset(out) as ds:
        assert ds.attrs["device"] == "cuda"
        assert ds.attrs["device_name"] == torch.cuda.get_device_name(0)
        assert ds.attrs["precision"] in ("bf16", "fp16")
        assert ds.attrs["device_setting"] == "auto"


def test_throughput_benchmark_runs() -> None:
    # On sys.path while it runs: its concurrent runs are spawned processes that import it.
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import resnet_throughput

        out = resnet_throughput.main(["--device", "cuda", "--width", "8", "--images", "600",
                                      "--batch-size", "100", "--epochs", "1",
                                      "--runs-per-gpu", "2"])
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    assert out["errors"] == {}, out["errors"]
    assert out["trainer_img_s"] > 0 and out["naive_img_s"] > 0 and out["ratio"] > 0
    assert out["train_flops_per_image"] > 0
    peak = resnet_throughput.peak_bf16_tflops(torch.cuda.get_device_name(0))
    assert (out["fraction_of_bf16_peak"] is None) == (peak is None)
    assert out["runs_per_gpu_img_s"][2] > 0


@pytest.mark.parametrize("method", ["weight_decay", "mixup", "cutmix"])
def test_linear_sweep_on_cuda_agrees_with_the_cpu(method: str, no_tf32: None) -> None:
    # The sweep's step on the GPU: the same draws (made on the host), the same weights and
    # losses to within float32 summation order (the tolerances above).
    from labaug.config import defaults
    from labaug.data import LinearData
    from labaug.train.linear import train_sweep

    rng = np.random.default_rng(0)
    y = np.where(rng.random(700) < 0.5, -1.0, 1.0).astype(np.float32)
    x = (rng.normal(size=(700, 48)) + 0.5 * y[:, None]).astype(np.float32)
    data = LinearData(x[:600], y[:600], x[600:], y[600:], image_shape=(3, 4, 4))
    optim = replace(defaults().optim, batch_size=64, epochs=3)
    values = [0.0, 0.05, 0.5]
    cpu = train_sweep(data, method, values, 0, optim)
    cuda = train_sweep(data, method, values, 0, optim, device="cuda")
    np.testing.assert_allclose(cuda.weights, cpu.weights, rtol=0, atol=1e-2)
    np.testing.assert_allclose(cuda.train_loss, cpu.train_loss, rtol=1e-3)
