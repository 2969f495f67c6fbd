"""ResNet-18 with GroupNorm in place of every BatchNorm: normalization without running statistics.

Same network as `labaug.models.resnet18`, but each normalization layer normalizes every example
on its own, over groups of channels, in training and evaluation alike: no statistics are
estimated on the training inputs (which carry class channels) and reused on the test inputs
(which carry zeros). The layers stay scale-invariant, as with BatchNorm.

Groups: 32 (the GroupNorm paper's) where a layer has at least 64 channels; in thinner layers the
largest divisor of C that leaves at least 2 channels per group, so small widths for CPU runs do
not become instance norm.

On a GPU it runs in the contiguous (NCHW) memory format: this PyTorch's GroupNorm kernels read
NCHW, and a channels_last model would convert its activations around every GroupNorm layer.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from labaug.models import register
from labaug.models.base import ClassChannelNet, Model
from labaug.models.resnet18 import CifarResNet18

MAX_GROUPS = 32


def group_count(channels: int) -> int:
    """The number of groups of a layer with ``channels`` channels (see the module docstring)."""
    most = max(1, min(MAX_GROUPS, channels // 2))
    return max(g for g in range(1, most + 1) if channels % g == 0)


def group_norm(channels: int) -> nn.GroupNorm:
    """A GroupNorm layer for ``channels`` channels with `group_count` groups."""
    return nn.GroupNorm(group_count(channels), channels)


@register
class ResNet18GroupNorm(Model):
    """ResNet-18 with GroupNorm: per-example normalization, no running statistics."""

    name = "resnet18_gn"
    title = "ResNet-18 (GroupNorm)"
    summary = ("ResNet-18 with GroupNorm in place of every BatchNorm: each example is normalized "
               "on its own, so no statistics of the training inputs are reused at test time")
    settings = ("width",)
    channels_last = False

    def network(self, input_shape: tuple[int, int, int], num_classes: int, width: int,
                hidden: Sequence[int]) -> ClassChannelNet:
        """CIFAR-stem ResNet-18 with GroupNorm."""
        return CifarResNet18(input_shape[0], num_classes, width, norm_layer=group_norm)
