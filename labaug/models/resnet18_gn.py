"""ResNet-18 with GroupNorm in place of every BatchNorm: normalization without running statistics.

Same network as `labaug.models.resnet18`, but each normalization layer normalizes every example
on its own, over groups of channels, in training and evaluation alike: no statistics are
estimated on the training inputs (which carry class channels) and reused on the test inputs
(which carry zeros). The layers stay scale-invariant, as with BatchNorm.

Groups (`labaug.models.nets.group_count`): 32 (the GroupNorm paper's) where a layer has at
least 64 channels; in thinner layers the largest divisor of C that leaves at least 2 channels
per group, so small widths for CPU runs do not become instance norm.

On a GPU it runs in the contiguous (NCHW) memory format: this PyTorch's GroupNorm kernels read
NCHW, and a channels_last model would convert its activations around every GroupNorm layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from labaug.models import register
from labaug.models.base import Model

if TYPE_CHECKING:
    from labaug.models.nets import ClassChannelNet


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
        from labaug.models.nets import CifarResNet18, group_norm

        return CifarResNet18(input_shape[0], num_classes, width, norm_layer=group_norm)
