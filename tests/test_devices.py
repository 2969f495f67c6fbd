"""The device model: where each family trains, who requests the GPU, and failing fast without one.

Dry runs of the smoke DAG (tests/cluster/smoke.py) show each job's resources; the resolved ResNet
device is printed once by the process that builds the DAG. These tests hold on any machine: the
expected ResNet device under ``resnet.device: auto`` is what this machine's torch sees.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from labaug.data.channels import class_channel_data
from labaug.devices import (
    DeviceUnavailableError,
    device_warnings,
    gpu_resources,
    native_bf16,
    nvidia_gpus,
    require_device,
    resolve_device,
    resolve_precision,
)
from labaug.train.resnet import ResNetRun, ResNetTrainer, train_resnet
from tests.cluster.smoke import REPO, snakemake, write_overrides
from tests.test_resnet import OPTIM, TINY, separable_raw

LABAUG = REPO / "labaug"
JOB_START = re.compile(r"^(?:local)?rule (\w+):$")
CUDA_HERE = torch.cuda.is_available()
no_gpu_here = pytest.mark.skipif(CUDA_HERE, reason="checks what happens on a machine without CUDA")


def dry_run_jobs(text: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, {field: value}) of every job a dry run lists, fields as printed (resources, ...)."""
    jobs: list[tuple[str, dict[str, str]]] = []
    for line in text.splitlines():
        start = JOB_START.match(line)
        if start:
            jobs.append((start.group(1), {}))
        elif jobs and line.startswith("    ") and ": " in line:
            key, value = line.strip().split(": ", 1)
            jobs[-1][1].setdefault(key, value)
    return jobs


def resources(fields: dict[str, str]) -> dict[str, str]:
    """A job's printed resources as {name: value}."""
    return dict(item.split("=", 1) for item in fields.get("resources", "").split(", ") if item)


def dry_run(workdir: Path, extra: dict[str, Any] | None, *args: str
            ) -> tuple[list[tuple[str, dict[str, str]]], str]:
    """Dry-run the whole smoke DAG in ``workdir`` with ``extra`` config; (jobs, output)."""
    write_overrides(workdir, extra)
    proc = snakemake(workdir, "-n", "--forceall", *args, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    jobs = dry_run_jobs(proc.stdout)
    assert {"train_resnet", "linear_sweep"} <= {rule for rule, _ in jobs}, out[-3000:]
    return jobs, out


# --- the device model, as functions ------------------------------------------------------------


def test_auto_resolves_to_what_this_process_sees() -> None:
    assert resolve_device("auto", cuda=True) == "cuda"
    assert resolve_device("auto", cuda=False) == "cpu"
    assert resolve_device("cpu", cuda=True) == "cpu" and resolve_device("cuda") == "cuda"
    assert resolve_device("auto") == ("cuda" if CUDA_HERE else "cpu")
    with pytest.raises(ValueError, match="auto, cpu, cuda"):
        resolve_device("tpu")
    assert gpu_resources("cuda") == {"gpu": 1} and gpu_resources("cpu") == {}


def test_precision_follows_the_device() -> None:
    assert resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"
    assert resolve_precision("fp16", "cuda") == "fp16"
    if CUDA_HERE:
        assert resolve_precision("auto", "cuda") == ("bf16" if native_bf16() else "fp16")
    with pytest.raises(ValueError, match="auto, bf16, fp16, fp32"):
        resolve_precision("fp8", "cpu")


@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "fp16")])
def test_auto_precision_is_bf16_only_where_the_gpu_computes_in_it(
        native: bool, expected: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # A V100 or T4 "supports" bf16 only by emulation (is_bf16_supported() says yes by default):
    # auto must choose fp16 there. An A100, H100 or newer computes in bf16 natively.
    def is_bf16_supported(including_emulation: bool = True) -> bool:
        return native or including_emulation

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    assert native_bf16() is native
    assert resolve_precision("auto", "cuda") == expected
    assert resolve_precision("auto", "cpu") == "fp32"


@no_gpu_here
def test_a_cuda_job_without_a_gpu_fails_naming_rule_job_and_key(tmp_path: Path) -> None:
    require_device("cpu", key="linear.device", rule="linear_sweep", job="x")
    with pytest.raises(DeviceUnavailableError,
                       match=r"rule linear_sweep, job data=synthetic .*linear\.device is cuda"):
        require_device("cuda", key="linear.device", rule="linear_sweep",
                       job="data=synthetic variance=zero method=mixup seed=0")
    # Through the job entry point: fails before any data is made or anything is trained.
    from labaug.jobs import linear_job
    from tests.conftest import merged_config

    config = merged_config("smoke")
    config["linear"] = {"device": "cuda"}
    out = tmp_path / "r.nc"
    with pytest.raises(DeviceUnavailableError, match=r"linear\.device is cuda"):
        linear_job(config, "synthetic", "zero", "mixup", [0], [out])
    assert not out.exists()


def test_nvidia_gpus_are_read_from_the_kernel_drivers_list(tmp_path: Path) -> None:
    assert nvidia_gpus(tmp_path / "absent") == []
    for bus, model in (("0000:41:00.0", "NVIDIA H100 80GB HBM3"), ("0000:01:00.0", None)):
        (tmp_path / bus).mkdir()
        info = f"Model: \t\t {model}\nIRQ:   \t\t 35\n" if model else "IRQ: 35\n"
        (tmp_path / bus / "information").write_text(info)
    # Sorted by bus; a GPU whose information names no model is named by its bus.
    assert nvidia_gpus(tmp_path) == ["0000:01:00.0", "NVIDIA H100 80GB HBM3"]


def test_gpu_slots_spread_runs_over_the_gpus_and_free_with_their_process(
        tmp_path: Path) -> None:
    from contextlib import ExitStack

    from labaug.devices import gpu_slot

    with ExitStack() as stack:
        held = [stack.enter_context(gpu_slot(2, tmp_path)) for _ in range(5)]
        # Every GPU's first slot, then every GPU's second, ...; a fifth run shares.
        assert held == [0, 1, 0, 1, 0]
    with gpu_slot(2, tmp_path) as first:
        assert first == 0                                      # all were let go
    # A run killed while it trains (no cleanup at all) frees its slot with its process.
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
         "from labaug.devices import gpu_slot\n"
         "with gpu_slot(2, Path(sys.argv[1])) as i: print(i, flush=True); time.sleep(60)",
         str(tmp_path)], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "0"
        with gpu_slot(2, tmp_path) as other:
            assert other == 1
        holder.kill()
        holder.wait()
        with gpu_slot(2, tmp_path) as freed:
            assert freed == 0
    finally:
        holder.kill()


def test_a_cuda_job_on_a_machine_with_several_gpus_takes_its_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from labaug.devices import job_gpu

    current: list[int] = []
    monkeypatch.setattr(torch.cuda, "set_device", current.append)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with job_gpu("cuda", tmp_path) as one, job_gpu("cpu", tmp_path) as cpu:
        assert one == cpu == "" and current == []         # nothing to choose: a SLURM node
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    with job_gpu("cuda", tmp_path) as a, job_gpu("cuda", tmp_path) as b:
        assert (a, b) == ("GPU 0 of 3", "GPU 1 of 3") and current == [0, 1]
    with job_gpu("cpu", tmp_path) as cpu:
        assert cpu == "" and current == [0, 1]


def gpu_config(**resnet: Any) -> dict[str, Any]:
    """The full default config, its ResNet settings changed by ``resnet``."""
    from tests.conftest import merged_config

    config = merged_config()
    config["resnet"].update(resnet)
    return config


@pytest.mark.parametrize("build, visible, reason", [
    (None, None, "was built without CUDA; `make setup` installs the CUDA build"),
    ("13.0", "", "CUDA_VISIBLE_DEVICES='' hides it"),
    ("13.0", "-1", "CUDA_VISIBLE_DEVICES='-1' hides it"),
    ("13.0", None, "an NVIDIA driver older than CUDA 13.0 needs"),
])
def test_auto_on_the_cpu_beside_an_unusable_gpu_says_why(
        build: str | None, visible: str | None, reason: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    small = gpu_config(width=4)                   # no size warning: only the unusable GPU
    gpus = ["NVIDIA H100 80GB HBM3", "NVIDIA H100 80GB HBM3"]
    (warning,) = device_warnings(small, "cpu", 8, gpus=gpus, cuda_build=build)
    assert warning.startswith("labaug WARNING: resnet.device: auto chose the CPU, but the "
                              "NVIDIA driver lists 2 GPU(s) here (NVIDIA H100 80GB HBM3)")
    assert reason in warning and "set resnet.device: cpu" in warning
    # Not a surprise, so no warning: the CPU chosen on purpose, a GPU in use, no ResNet runs,
    # or no NVIDIA driver at all.
    assert device_warnings(gpu_config(width=4, device="cpu"), "cpu", 8, gpus=gpus) == []
    assert device_warnings(gpu_config(width=4, device="cuda"), "cuda", 8, gpus=gpus) == []
    assert device_warnings(small, "cuda", 8, gpus=gpus) == []
    assert device_warnings(small, "cpu", 0, gpus=gpus) == []
    assert device_warnings(small, "cpu", 8, gpus=[]) == []


def test_the_devices_line_of_a_dry_run_names_a_gpu_torch_cannot_use(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import labaug.devices as devices

    jobs = {"train_resnet": {}, "linear_sweep": {}}
    monkeypatch.setattr(devices, "cuda_available", lambda: False)
    monkeypatch.setattr(devices, "nvidia_gpus", lambda: [])
    assert "(resnet.device: auto; this machine sees no CUDA GPU)" in devices.device_summary(
        gpu_config(), "cpu", jobs)
    monkeypatch.setattr(devices, "nvidia_gpus", lambda: ["NVIDIA H100 80GB HBM3"])
    monkeypatch.setattr(torch.version, "cuda", None)
    line = devices.device_summary(gpu_config(), "cpu", jobs)
    assert ("(resnet.device: auto; torch sees no CUDA GPU, though the NVIDIA driver lists 1: "
            "this torch") in line and "was built without CUDA" in line, line


def test_resnet18_runs_of_the_papers_size_on_the_cpu_are_announced() -> None:
    (warning,) = device_warnings(gpu_config(), "cpu", 40, gpus=[])
    assert warning.startswith("labaug WARNING: 40 class-channel run(s), of resnet18 at width 64 "
                              "(100 epochs, all training images) will train on the CPU")
    assert "presets/quick.yaml" in warning and "profiles/slurm" in warning
    (subset,) = device_warnings(gpu_config(width=32, epochs=5, train_subset=1000), "cpu", 2,
                                gpus=[])
    assert ("2 class-channel run(s), of resnet18 at width 32 (5 epochs, 1000 training images)"
            in subset)
    # Every ResNet of several models is named; the MLP has no width.
    (several,) = device_warnings(gpu_config(models=["mlp", "resnet18_gn", "resnet18_nn"]),
                                 "cpu", 12, gpus=[])
    assert "of resnet18_gn, resnet18_nn at width 64" in several
    # CPU-scale models, a GPU, or the CPU chosen on purpose: nothing to say.
    assert device_warnings(gpu_config(width=16), "cpu", 40, gpus=[]) == []
    assert device_warnings(gpu_config(models=["mlp"]), "cpu", 40, gpus=[]) == []
    assert device_warnings(gpu_config(), "cuda", 40, gpus=[]) == []
    assert device_warnings(gpu_config(device="cpu"), "cpu", 40, gpus=[]) == []
    # Both at once: the unusable GPU first.
    both = device_warnings(gpu_config(), "cpu", 40, gpus=["Tesla T4"], cuda_build=None)
    assert [w.split(":")[1].strip()[:10] for w in both] == ["resnet.dev", "40 class-c"]


# --- the CPU trainer: ERM by Mixup alpha = 0, one sync per epoch, checkpoint cadence -----------


def test_mixup_alpha_zero_trains_as_erm_bitwise() -> None:
    data = class_channel_data(separable_raw(), "gen", 0)
    hp = {**TINY.hp, "mixup": 0.0, "label_smoothing": 0.0}
    resnet = replace(TINY, hp=hp)
    out: dict[str, tuple[np.ndarray, dict[str, torch.Tensor]]] = {}
    for method in ("mixup", "label_smoothing"):
        trainers: list[ResNetTrainer] = []
        h = train_resnet(data, ResNetRun("gen", method, 0), replace(OPTIM, epochs=1), resnet,
                         trainer_out=trainers)
        out[method] = (h.train_loss, trainers[0].model.state_dict())
    np.testing.assert_array_equal(out["mixup"][0], out["label_smoothing"][0])
    a, b = out["mixup"][1], out["label_smoothing"][1]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_one_host_sync_per_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    """labaug's epoch reads the device once (Adam's own CPU step counters are not ours: on CUDA
    it is fused and reads nothing)."""
    data = class_channel_data(separable_raw(), "gen", 0)
    tr = ResNetTrainer(data, ResNetRun("gen", "mixup", 0), OPTIM, TINY)
    calls = {"item": 0, "tolist": 0}
    item, tolist = torch.Tensor.item, torch.Tensor.tolist

    def counted(name: str, fn: Any) -> Any:
        def wrapper(self: torch.Tensor, *a: Any, **k: Any) -> Any:
            caller = sys._getframe(1).f_code.co_filename
            if Path(caller).is_relative_to(LABAUG):
                calls[name] += 1
            return fn(self, *a, **k)
        return wrapper

    monkeypatch.setattr(torch.Tensor, "item", counted("item", item))
    monkeypatch.setattr(torch.Tensor, "tolist", counted("tolist", tolist))
    tr.train_epoch()
    assert calls == {"item": 0, "tolist": 1}


def test_checkpoints_every_n_minutes_and_after_the_last_epoch(tmp_path: Path) -> None:
    data = class_channel_data(separable_raw(), "gen", 0)
    ckpt = tmp_path / "c.pt"
    exists: list[bool] = []
    train_resnet(data, ResNetRun("gen", "weight_decay", 0), OPTIM,
                 replace(TINY, checkpoint_minutes=60.0), checkpoint=ckpt,
                 on_epoch=lambda epoch: exists.append(ckpt.exists()))
    assert exists == [False, False, True]
    assert torch.load(ckpt, weights_only=True)["epoch"] == 3


# --- the workflow: who requests the GPU --------------------------------------------------------


def test_default_command_trains_resnet_where_the_dag_is_built(tmp_path: Path) -> None:
    """`snakemake --cores 8 --resources gpu=1`: ResNet on this machine's device; gpu iff cuda."""
    jobs, out = dry_run(tmp_path, None, "--cores", "8", "--resources", "gpu=1")
    device = "cuda" if CUDA_HERE else "cpu"
    assert f"ResNet runs on {device} (resnet.device: auto" in out, out[-3000:]
    assert "linear sweeps on cpu" in out
    for rule, fields in jobs:
        wants_gpu = rule == "train_resnet" and CUDA_HERE
        assert ("gpu" in resources(fields)) == wants_gpu, (rule, fields)


def test_cuda_resnet_jobs_request_the_gpu_and_nothing_else_does(tmp_path: Path) -> None:
    jobs, out = dry_run(tmp_path, {"resnet": {"device": "cuda"}}, "--cores", "8",
                        "--resources", "gpu=1")
    assert "ResNet runs on cuda (resnet.device: cuda" in out
    for rule, fields in jobs:
        assert resources(fields).get("gpu") == ("1" if rule == "train_resnet" else None), (
            rule, fields)


def test_slurm_profile_sets_cuda_and_one_gpu_per_resnet_job_in_the_gpu_partition(
        tmp_path: Path) -> None:
    jobs, out = dry_run(tmp_path, None, "--workflow-profile", str(REPO / "profiles" / "slurm"))
    assert "ResNet runs on cuda (resnet.device: cuda" in out, out[-3000:]
    for rule, fields in jobs:
        res = resources(fields)
        if rule == "train_resnet":
            assert res.get("gpu") == "1" and res.get("slurm_partition") == "gpu", fields
        elif rule == "linear_sweep":
            assert "gpu" not in res and res.get("slurm_partition") == "compute", fields
        else:
            assert "gpu" not in res, (rule, fields)


@no_gpu_here
def test_a_run_warns_before_paper_size_resnet_runs_train_on_the_cpu(tmp_path: Path) -> None:
    """The warning counts the ResNet runs this invocation will train: none for a target without
    them; one for one run at width 64, printed before it starts (it then stops at an injected
    NaN, so nothing trains at that size here)."""
    write_overrides(tmp_path, {"resnet": {"width": 64, "datasets": ["cifar10"]},
                               "image_datasets": ["cifar10"]})
    proc = snakemake(tmp_path, "--cores", "1", "data/raw/cifar10.npz", timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "labaug WARNING" not in proc.stdout + proc.stderr
    env = dict(os.environ, LABAUG_INJECT_NAN="cifar10:weight_decay:0:1")
    proc = snakemake(tmp_path, "--cores", "1",
                     "results/resnet/cifar10/resnet18/weight_decay/grid0/seed0.nc",
                     env=env, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "NonFiniteLossError" in out, out[-3000:]
    warning = ("labaug WARNING: 1 class-channel run(s), of resnet18 at width 64 (2 epochs, 200 "
               "training images) will train on the CPU")
    assert out.count(warning) == 1, out[-3000:]
    assert out.index(warning) < out.index("rule train_resnet:"), out[-3000:]


@no_gpu_here
def test_a_cuda_resnet_job_started_here_fails_at_once(tmp_path: Path) -> None:
    write_overrides(tmp_path, {"resnet": {"device": "cuda", "datasets": ["cifar10"]},
                               "image_datasets": ["cifar10"]})
    run = "resnet/cifar10/resnet18/weight_decay/grid0/seed0"
    target = f"results/{run}.nc"
    proc = snakemake(tmp_path, "--cores", "1", target, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    log = (tmp_path / "logs" / f"{run}.log").read_text()
    for text in (log, out):
        assert "DeviceUnavailableError" in text or "rule train_resnet, job" in text, text[-3000:]
        assert ("rule train_resnet, job dataset=cifar10 model=resnet18 method=weight_decay "
                "seed=0") in text, text[-3000:]
        assert "resnet.device is cuda" in text, text[-3000:]
    assert "epoch 1/" not in log                      # nothing was trained
    assert not (tmp_path / target).exists()
    assert not (tmp_path / "checkpoints").exists()
