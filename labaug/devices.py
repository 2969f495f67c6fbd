"""The one device model: where each training family runs, and what a job checks before training.

Each training family has its own setting in ``config.yaml``: ``linear.device`` (cpu or cuda;
default cpu: the sweeps are small and dispatch-bound) and ``resnet.device`` (auto, cpu or cuda;
default auto). ``auto`` is resolved once, by `resolve_device`, in the process that builds the
DAG (``workflow/rules/common.smk``): cuda when that process sees a CUDA GPU, else cpu. The
resolved device goes to each job as a parameter; only jobs that will use a GPU request the
``gpu`` resource (`gpu_resources`); a job set to cuda that starts where there is none fails at
once (`require_device`), naming the rule, the job and the config key, and never trains on the
CPU instead. The precision of the ResNet runs follows the device (`resolve_precision`).
"""

from __future__ import annotations

import platform
import socket
from collections.abc import Mapping
from typing import Any, Literal

import torch

from labaug.config import Device, DeviceSetting, PrecisionSetting

__all__ = ["DEVICE_KEYS", "Device", "DeviceSetting", "DeviceUnavailableError", "Precision",
           "PrecisionSetting", "cuda_available", "device_name", "device_summary", "gpu_resources",
           "native_bf16", "require_device", "resolve_device", "resolve_precision"]

Precision = Literal["bf16", "fp16", "fp32"]
"""The arithmetic of the ResNet forward pass (weights and optimizer stay fp32)."""

DEVICE_KEYS = {"linear": "linear.device", "resnet": "resnet.device"}
"""The config key of each training family's device."""


class DeviceUnavailableError(RuntimeError):
    """A job is configured for a device this machine does not have; nothing was trained."""


def cuda_available() -> bool:
    """Whether this process sees a usable CUDA GPU."""
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
    seen = "sees a" if cuda_available() else "sees no"
    requesting = ", ".join(rule for rule, res in gpu_jobs.items() if res.get("gpu")) or "none"
    return (f"labaug devices: ResNet runs on {resnet_device} (resnet.device: {resnet['device']}; "
            f"this machine {seen} CUDA GPU), precision {resnet['precision']}, "
            f"{resnet['runs_per_gpu']} per GPU; linear sweeps on {config['linear']['device']} "
            f"(linear.device); rules requesting the gpu resource themselves: {requesting}")


def require_device(device: str, *, key: str, rule: str, job: str) -> None:
    """Raise `DeviceUnavailableError` when ``device`` is cuda and this machine has no CUDA GPU."""
    if device != "cuda" or cuda_available():
        return
    raise DeviceUnavailableError(
        f"rule {rule}, job {job}: {key} is cuda, but host {socket.gethostname()} has no usable "
        f"CUDA GPU (torch.cuda.is_available() is False; torch {torch.__version__}, built for "
        f"CUDA {torch.version.cuda or 'none'}). Nothing was trained: a job set to cuda never "
        f"falls back to the CPU. Run it where a GPU is visible (on SLURM: a GPU partition with "
        f"the gpu resource), or set {key}: cpu"
        + (" or auto." if key == DEVICE_KEYS["resnet"] else "."))


def native_bf16() -> bool:
    """Whether this process's GPU computes in bf16 natively (compute capability 8.0 or newer).

    Not ``torch.cuda.is_bf16_supported()`` as such: by default it also says yes for an older GPU
    (a V100 or T4) that only emulates bf16, far slower than its fp16 tensor cores.
    """
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
    dev = torch.device(device)
    if dev.type == "cuda":
        return str(torch.cuda.get_device_name(dev))
    return platform.processor() or platform.machine() or "cpu"
