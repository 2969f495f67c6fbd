"""Where a class-channel run computes, and in what arithmetic: its device, precision, memory
format and compilation (`Placement`), and its data resident on that device (`Resident`).

On CUDA the model runs channels_last unless the model says it has no use for it (the resident
tensors are stored channels_last once, so batches taken from them need no conversion) under
autocast with fp32 weights: bf16 where the GPU computes in it natively, else fp16 with loss
scaling (`torch.amp.GradScaler`), or fp32 when asked (``resnet.precision``;
`labaug.devices.resolve_precision`); cuDNN autotuning is on. On the CPU the model runs in fp32
and is bitwise reproducible; mixed precision on the CPU, when asked, lets tests exercise that
path.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from labaug.data.channels import ClassChannelData, with_class_channels, with_zero_channels
from labaug.devices import Precision, resolve_device, resolve_precision

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
"""The autocast dtype of each mixed precision (fp32 runs without autocast)."""


@dataclass(frozen=True)
class Placement:
    """A run's device, arithmetic, memory format and compilation."""

    device: torch.device
    precision: Precision
    channels_last: bool
    compiled: bool

    @property
    def memory_format(self) -> torch.memory_format:
        """The memory format of the model's inputs and weights."""
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """bf16 or fp16 autocast (fp32 weights); plain fp32 for fp32."""
        return autocast(self.device, self.precision)


def autocast(device: torch.device, precision: Precision) -> contextlib.AbstractContextManager[Any]:
    """bf16 or fp16 autocast on ``device`` (fp32 weights); no autocast for fp32."""
    if precision in AUTOCAST_DTYPES:
        return torch.autocast(device_type=device.type, dtype=AUTOCAST_DTYPES[precision])
    return contextlib.nullcontext()


def placement(device: str, precision: str, compiled: bool, model_wants_channels_last: bool
              ) -> Placement:
    """The placement of a run: ``device`` (auto = cuda when this process sees a GPU),
    ``precision`` (auto = bf16 / fp16 by GPU, fp32 on the CPU), channels_last where the model
    wants it and the run is on CUDA or in mixed precision; turns cuDNN autotuning on for CUDA
    (the shapes are fixed)."""
    dev = torch.device(resolve_device(device) if device == "auto" else device)
    chosen = resolve_precision(precision, dev.type)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return Placement(dev, chosen, model_wants_channels_last and
                     (dev.type == "cuda" or chosen != "fp32"), compiled)


@dataclass(frozen=True)
class Resident:
    """A run's standardized images, labels and class vectors as tensors on its device, in its
    memory format once (not per batch)."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    vectors: Tensor
    num_classes: int
    channels_last: bool

    @classmethod
    def of(cls, data: ClassChannelData, where: Placement) -> Resident:
        """``data`` copied to the device of ``where``, in its memory format."""
        dev, fmt = where.device, where.memory_format

        def images(a: Any) -> Tensor:
            return torch.as_tensor(a, dtype=torch.float32, device=dev).contiguous(
                memory_format=fmt)

        return cls(images(data.x_train), torch.as_tensor(data.y_train, dtype=torch.int64,
                                                          device=dev),
                   images(data.x_test), torch.as_tensor(data.y_test, dtype=torch.int64,
                                                        device=dev),
                   images(data.class_vectors), data.num_classes, where.channels_last)

    def inputs(self, images: Tensor, channels: Tensor | None) -> Tensor:
        """Model inputs: ``images`` with the class vectors of ``channels`` (labels), or with
        zero channels (None), in the run's memory format."""
        x = (with_zero_channels(images) if channels is None
             else with_class_channels(images, channels, self.vectors))
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x
