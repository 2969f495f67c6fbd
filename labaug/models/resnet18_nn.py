"""ResNet-18 with no normalization layers at all: each residual branch scaled by a learnable
scalar that starts at 0 (SkipInit, De and Smith 2020), so the network starts as its shortcuts.

Without normalization, weight decay bounds the function the network computes the way it bounds
a linear model's weights (no layer is scale-invariant), which is the contrast this model tests.
Every block computes relu(shortcut(x) + alpha * conv2(relu(conv1(x)))), alpha = 0 at
initialization; the convolutions have biases (there is no normalization layer to supply them)
(`labaug.models.nets.NormFreeResNet18`). Convolutions are initialized He-normal in fan-in mode,
which keeps the activations' scale through the shortcut path (torchvision's fan-out mode relies
on BatchNorm to rescale them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from labaug.models import register
from labaug.models.base import Model

if TYPE_CHECKING:
    import torch

    from labaug.models.nets import ClassChannelNet


@register
class ResNet18NormFree(Model):
    """ResNet-18 with no normalization layers; residual branches start switched off."""

    name = "resnet18_nn"
    title = "ResNet-18 (no normalization)"
    summary = ("ResNet-18 with no normalization layers: each residual branch is scaled by a "
               "learnable scalar that starts at 0, so the network starts as its shortcuts")
    settings = ("width",)

    def network(self, input_shape: tuple[int, int, int], num_classes: int, width: int,
                hidden: Sequence[int]) -> ClassChannelNet:
        """CIFAR-stem ResNet-18 without normalization."""
        from labaug.models.nets import NormFreeResNet18

        return NormFreeResNet18(input_shape[0], num_classes, width)

    def initialize(self, net: ClassChannelNet, generator: torch.Generator) -> None:
        """He-normal (fan-in) convolutions, zero biases, alpha = 0, nn.Linear's default head."""
        from labaug.models.nets import init_weights

        init_weights(net, generator, conv_mode="fan_in")
