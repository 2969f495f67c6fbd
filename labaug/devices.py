"""The one device model: where each training family runs, and what a job checks before training.

Each training family has its own setting in ``config.yaml``: ``linear.device`` (cpu or cuda;
default cpu: the sweeps are small and dispatch-bound) and ``resnet.device`` (auto, cpu or cuda;
default auto). ``auto`` is resolved once, by `resolve_device`, in the process that builds the
DAG (``workflow/rules/common.smk``): cuda when that process sees a CUDA GPU, else cpu. The
resolved device goes to each job as a parameter; only jobs that will use a GPU request the
``gpu`` resource (`gpu_resources`); a job set to cuda that starts where there is none fails at
once (`require_device`), naming the rule, the job and the config key, and never trains on the
CPU instead. The precision of the ResNet runs follows the device (`resolve_precision`).
`device_warnings` says, when a run starts (``onstart`` in ``workflow/rules/resnet.smk``), that
``auto`` chose the CPU on a machine whose NVIDIA driver lists a GPU (and why torch cannot use
it), or that ResNet-18 runs of the paper's size are about to train on a CPU.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import platform
import re
import socket
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from labaug.config import Device, DeviceSetting, PrecisionSetting
from labaug.io import try_lock

if TYPE_CHECKING:
    import torch

__all__ = ["DEVICE_KEYS", "Device", "DeviceSetting", "DeviceUnavailableError", "Precision",
           "PrecisionSetting", "cuda_available", "cuda_unusable_reason", "device_name",
           "device_summary", "device_warnings", "gpu_resources", "gpu_slot", "job_gpu",
           "native_bf16", "nvidia_gpus", "require_device", "resolve_device", "resolve_precision"]

Precision = Literal["bf16", "fp16", "fp32"]
"""The arithmetic of the ResNet forward pass (weights and optimizer stay fp32)."""

DEVICE_KEYS = {"linear": "linear.device", "resnet": "resnet.device"}
"""The config key of each training family's device."""

NVIDIA_DRIVER_GPUS = Path("/proc/driver/nvidia/gpus")
"""Where the NVIDIA kernel driver lists the GPUs it drives (one folder each), on Linux."""

GPU_SLOTS = Path(tempfile.gettempdir()) / (
    f"labaug-gpu-slots-{os.getuid()}" if hasattr(os, "getuid") else "labaug-gpu-slots")
"""Where the training jobs of this user on this machine hold their GPU slots (`gpu_slot`)."""

PAPER_SCALE_WIDTH = 32
"""A ResNet-18 at least this wide (the paper's is 64) is far beyond a CPU at full scale."""


class DeviceUnavailableError(RuntimeError):
    """A job is configured for a device this machine does not have; nothing was trained."""


GPU_DEVICE_NODES = ("/dev/nvidia[0-9]*", "/dev/dxg", "/dev/nvhost-ctrl-gpu")
"""Device files one of which exists wherever a CUDA GPU can be used: an NVIDIA driver's (Linux,
and GPU containers), WSL 2's, NVIDIA Jetson's."""


def gpu_device_nodes() -> bool:
    """Whether this machine has a device file through which a CUDA GPU could be reached; where
    it has none, torch need not even be imported to know there is no GPU."""
    import glob

    return any(glob.glob(pattern) for pattern in GPU_DEVICE_NODES)


def cuda_available() -> bool:
    """Whether this process sees a usable CUDA GPU (without importing torch where there is no
    GPU device file at all, which keeps `snakemake` quick to start on a CPU-only machine)."""
    if not gpu_device_nodes():
        return False
    import torch

    return bool(torch.cuda.is_available())


def resolve_device(setting: str, cuda: bool | None = None) -> Device:
    """A configured device (auto, cpu, cuda) -> cpu or cuda; auto = cuda where ``cuda`` (default:
    this process sees a GPU)."""
    if setting == "auto":
        return "cuda" if (cuda_available() if cuda is None else cuda) else "cpu"
    if setting in ("cpu", "cuda"):
        return "cuda" if setting == "cuda" else "cpu"
    raise ValueError(f"unknown device {setting!r}; choose from auto, cpu, cuda")


def gpu_resources(device: str) -> dict[str, int]:
    """The Snakemake resources of a job on ``device``: {'gpu': 1} on cuda, none on the CPU."""
    return {"gpu": 1} if device == "cuda" else {}


def device_summary(config: Mapping[str, Any], resnet_device: str,
                   gpu_jobs: Mapping[str, Mapping[str, int]]) -> str:
    """One line for the log of the process that builds the DAG: where each family trains, and
    which rules request the ``gpu`` resource (``gpu_jobs``: rule -> its GPU resources)."""
    resnet = config["resnet"]
    seen = "this machine sees a CUDA GPU"
    if not cuda_available():
        listed = nvidia_gpus()
        seen = ("this machine sees no CUDA GPU" if not listed else
                f"torch sees no CUDA GPU, though the NVIDIA driver lists {len(listed)}: "
                f"{cuda_unusable_reason(this_torch_cuda())}")
    requesting = ", ".join(rule for rule, res in gpu_jobs.items() if res.get("gpu")) or "none"
    return (f"labaug devices: ResNet runs on {resnet_device} (resnet.device: {resnet['device']}; "
            f"{seen}), precision {resnet['precision']}, "
            f"{resnet['runs_per_gpu']} per GPU; linear sweeps on {config['linear']['device']} "
            f"(linear.device); rules requesting the gpu resource themselves: {requesting}")


def nvidia_gpus(root: Path = NVIDIA_DRIVER_GPUS) -> list[str]:
    """The model names of the GPUs the NVIDIA kernel driver lists, whether or not torch can use
    them (empty where there is no such driver)."""
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return []
    names = []
    for entry in entries:
        try:
            info = (entry / "information").read_text(errors="replace")
        except OSError:
            info = ""
        model = re.search(r"^Model:\s*(.+?)\s*$", info, re.MULTILINE)
        names.append(model.group(1) if model else entry.name)
    return names


def this_torch_cuda() -> str | None:
    """The CUDA version this process's torch was built for (None: built without CUDA)."""
    import torch

    return torch.version.cuda


def cuda_unusable_reason(cuda_build: str | None) -> str:
    """Why this process's torch (built for CUDA ``cuda_build``, None = without CUDA) cannot use
    a GPU that the driver lists, with what to do about it."""
    import torch

    if cuda_build is None:
        return (f"this torch ({torch.__version__}) was built without CUDA; `make setup` installs "
                "the CUDA build that constraints.txt pins (on Linux x86-64 the PyPI wheels are "
                "CUDA builds), and for conda see envs/labaug.yaml")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return f"CUDA_VISIBLE_DEVICES={visible!r} hides it from this process"
    return (f"torch {torch.__version__} is built for CUDA {cuda_build} but finds no usable "
            f"device; the usual cause is an NVIDIA driver older than CUDA {cuda_build} needs "
            "(`nvidia-smi` prints the CUDA version the driver supports)")


def device_warnings(config: Mapping[str, Any], resnet_device: str, runs: int,
                    gpus: Sequence[str] | None = None,
                    cuda_build: str | None | Literal["this torch"] = "this torch") -> list[str]:
    """Warnings for the start of a run, about the ``runs`` ResNet jobs it will train on
    ``resnet_device``: ``auto`` chose the CPU although the NVIDIA driver lists a GPU
    (``gpus``; default: `nvidia_gpus`) that torch (built for ``cuda_build``; default: this
    process's) cannot use; or ResNet-18 runs of the paper's size will train on a CPU."""
    resnet = config["resnet"]
    if resnet_device != "cpu" or resnet["device"] != "auto" or runs == 0:
        return []
    warnings = []
    gpus = nvidia_gpus() if gpus is None else gpus
    if gpus:
        build = this_torch_cuda() if cuda_build == "this torch" else cuda_build
        warnings.append(
            f"labaug WARNING: resnet.device: auto chose the CPU, but the NVIDIA driver lists "
            f"{len(gpus)} GPU(s) here ({', '.join(dict.fromkeys(gpus))}) that torch cannot "
            f"use: {cuda_unusable_reason(build)}. Fix that and rerun to train on the GPU, "
            f"or set resnet.device: cpu to train on the CPU on purpose.")
    from labaug import models

    wide = [m for m in resnet["models"] if "width" in models.get(m).settings]
    if wide and resnet["width"] >= PAPER_SCALE_WIDTH:
        epochs = resnet["epochs"] or config["optim"]["epochs"]
        images = ("all training images" if resnet["train_subset"] is None
                  else f"{resnet['train_subset']} training images")
        warnings.append(
            f"labaug WARNING: {runs} class-channel run(s), of {', '.join(wide)} at width "
            f"{resnet['width']} ({epochs} "
            f"epochs, {images}) will train on the CPU, one core each: at this size that takes "
            f"days per run. On a GPU machine resnet.device: auto picks the GPU; profiles/slurm "
            f"sends the runs to GPU nodes; presets/quick.yaml is the CPU-scale run. Set "
            f"resnet.device: cpu to train on the CPU on purpose.")
    return warnings


def require_device(device: str, *, key: str, rule: str, job: str) -> None:
    """Raise `DeviceUnavailableError` when ``device`` is cuda and this machine has no CUDA GPU."""
    if device != "cuda" or cuda_available():
        return
    import torch

    raise DeviceUnavailableError(
        f"rule {rule}, job {job}: {key} is cuda, but host {socket.gethostname()} has no usable "
        f"CUDA GPU (torch.cuda.is_available() is False; torch {torch.__version__}, built for "
        f"CUDA {torch.version.cuda or 'none'}). Nothing was trained: a job set to cuda never "
        f"falls back to the CPU. Run it where a GPU is visible (on SLURM: a GPU partition with "
        f"the gpu resource), or set {key}: cpu"
        + (" or auto." if key == DEVICE_KEYS["resnet"] else "."))


@contextlib.contextmanager
def gpu_slot(count: int, slots: Path = GPU_SLOTS) -> Iterator[int]:
    """Hold one of this machine's ``count`` GPUs for this process; yields its index.

    Slot k of GPU i is the lock file ``slots/gpu{i}.slot{k}.lock``; the first free one in the
    order (slot 0 of every GPU, then slot 1 of every GPU, ...) is taken, so runs spread over the
    GPUs before any GPU gets a second. A slot is freed when the process lets go or ends, however
    it ends (flock). More runs than slots share the least-held GPUs rather than wait.
    """
    for k in itertools.count():
        for index in range(count):
            fd = try_lock(slots / f"gpu{index}.slot{k}.lock")
            if fd is None:
                continue
            try:
                yield index
            finally:
                os.close(fd)
            return


@contextlib.contextmanager
def job_gpu(device: str, slots: Path = GPU_SLOTS) -> Iterator[str]:
    """The GPU of one cuda job on a machine that sees several: a slot of `gpu_slot`, made this
    process's current CUDA device (so "cuda" means it), described for the log ("GPU 2 of 4");
    "" where there is nothing to choose (the CPU, one visible GPU, as on a SLURM node)."""
    import torch

    count = torch.cuda.device_count() if device == "cuda" else 0
    if count < 2:
        yield ""
        return
    with gpu_slot(count, slots) as index:
        torch.cuda.set_device(index)
        yield f"GPU {index} of {count}"


def native_bf16() -> bool:
    """Whether this process's GPU computes in bf16 natively (compute capability 8.0 or newer).

    Not ``torch.cuda.is_bf16_supported()`` as such: by default it also says yes for an older GPU
    (a V100 or T4) that only emulates bf16, far slower than its fp16 tensor cores.
    """
    import torch

    return bool(torch.cuda.is_available()
                and torch.cuda.is_bf16_supported(including_emulation=False))


def resolve_precision(setting: str, device: str) -> Precision:
    """auto -> bf16 on a GPU that computes in it natively, fp16 (with loss scaling) on an older
    GPU, fp32 on the CPU; an explicit bf16, fp16 or fp32 is kept."""
    if setting == "auto":
        if device != "cuda":
            return "fp32"
        return "bf16" if native_bf16() else "fp16"
    if setting in ("bf16", "fp16", "fp32"):
        return "bf16" if setting == "bf16" else "fp16" if setting == "fp16" else "fp32"
    raise ValueError(f"unknown precision {setting!r}; choose from auto, bf16, fp16, fp32")


def device_name(device: str | torch.device) -> str:
    """The hardware behind ``device``: the GPU's name on cuda, the CPU's description otherwise."""
    if str(device).split(":")[0] != "cuda":    # no torch import for a job that never trains
        return platform.processor() or platform.machine() or "cpu"
    import torch

    return str(torch.cuda.get_device_name(torch.device(device)))
