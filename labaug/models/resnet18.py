"""ResNet-18 with the CIFAR stem and BatchNorm: the paper's model (Sec. 4.3) and the default.

torchvision's BasicBlocks in four stages of width w, 2w, 4w, 8w (w = 64 is the standard model),
a 3x3 stride-1 stem and no max-pool (`labaug.models.nets.CifarResNet18`), initialized as
torchvision does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from labaug.models import register
from labaug.models.base import Model

if TYPE_CHECKING:
    from labaug.models.nets import ClassChannelNet


@register
class ResNet18(Model):
    """The paper's ResNet-18: BatchNorm after every convolution."""

    name = "resnet18"
    title = "ResNet-18"
    summary = ("ResNet-18 with the CIFAR stem and BatchNorm after every convolution (the "
               "paper's model)")
    settings = ("width",)

    def network(self, input_shape: tuple[int, int, int], num_classes: int, width: int,
                hidden: Sequence[int]) -> ClassChannelNet:
        """CIFAR-stem ResNet-18 with BatchNorm."""
        from labaug.models.nets import CifarResNet18

        return CifarResNet18(input_shape[0], num_classes, width)
