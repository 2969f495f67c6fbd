"""ResNet-18 with no normalization layers at all: each residual branch scaled by a learnable
scalar that starts at 0 (SkipInit, De and Smith 2020), so the network starts as its shortcuts.

Without normalization, weight decay bounds the function the network computes the way it bounds
a linear model's weights (no layer is scale-invariant), which is the contrast this model tests.
Every block computes relu(shortcut(x) + alpha * conv2(relu(conv1(x)))), alpha = 0 at
initialization; the convolutions have biases (there is no normalization layer to supply them).
Convolutions are initialized He-normal in fan-in mode, which keeps the activations' scale
through the shortcut path (torchvision's fan-out mode relies on BatchNorm to rescale them).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from labaug.models import register
from labaug.models.base import ClassChannelNet, Model, init_weights


class SkipInitBlock(nn.Module):
    """A BasicBlock without normalization whose residual branch is scaled by ``alpha`` (0 at
    initialization)."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=True)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=True)
        self.alpha = nn.Parameter(torch.empty(()))
        self.downsample = (nn.Conv2d(inplanes, planes, 1, stride=stride, bias=True)
                           if stride != 1 or inplanes != planes else None)

    def reset_own_parameters(self) -> None:
        """alpha = 0: the block starts as its shortcut (`init_weights` calls this)."""
        with torch.no_grad():
            self.alpha.zero_()

    def shortcut(self, x: Tensor) -> Tensor:
        """The shortcut path: x, or its strided 1x1 projection where the shape changes."""
        if self.downsample is None:
            return x
        projected: Tensor = self.downsample(x)
        return projected

    def forward(self, x: Tensor) -> Tensor:
        """relu(shortcut(x) + alpha * residual(x))."""
        residual = self.conv2(self.relu(self.conv1(x)))
        out: Tensor = self.relu(self.shortcut(x) + self.alpha * residual)
        return out


class NormFreeResNet18(ClassChannelNet):
    """ResNet-18 (2-2-2-2 blocks), CIFAR stem, no normalization, SkipInit residual scales."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=True)
        self.relu = nn.ReLU(inplace=True)
        stages: list[nn.Module] = []
        inplanes = width
        for i, planes in enumerate((width, 2 * width, 4 * width, 8 * width)):
            stride = 1 if i == 0 else 2
            stages.append(nn.Sequential(SkipInitBlock(inplanes, planes, stride),
                                        SkipInitBlock(planes, planes)))
            inplanes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(8 * width, num_classes)
        self.head = self.fc

    def blocks(self) -> list[SkipInitBlock]:
        """The eight residual blocks, in order."""
        return [b for layer in (self.layer1, self.layer2, self.layer3, self.layer4)
                for b in layer.children() if isinstance(b, SkipInitBlock)]

    def features(self, x: Tensor) -> Tensor:
        """Everything before the final linear layer: the pooled (B, 8w) features."""
        x = self.relu(self.conv1(x))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        pooled: Tensor = self.avgpool(x)
        return pooled.flatten(1)


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
        return NormFreeResNet18(input_shape[0], num_classes, width)

    def initialize(self, net: ClassChannelNet, generator: torch.Generator) -> None:
        """He-normal (fan-in) convolutions, zero biases, alpha = 0, nn.Linear's default head."""
        init_weights(net, generator, conv_mode="fan_in")
