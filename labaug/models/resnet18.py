"""ResNet-18 with the CIFAR stem and BatchNorm: the paper's model (Sec. 4.3) and the default.

torchvision's `ResNet` hard-codes 64/128/256/512 channels and an ImageNet stem (7x7 stride-2 conv
and a max-pool). `CifarResNet18` keeps torchvision's `ResNet._make_layer` and `BasicBlock`, and
only sets the attributes those read: a 3x3 stride-1 stem conv, no max-pool, stages of width w,
2w, 4w, 8w (w = 64 is the standard model), ``in_channels`` inputs, and the normalization layer
(BatchNorm here; `labaug.models.resnet18_gn` swaps in GroupNorm). Initialized as torchvision
does (`labaug.models.base.init_weights`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, ResNet

from labaug.models import register
from labaug.models.base import ClassChannelNet, Model


class CifarResNet18(ResNet, ClassChannelNet):  # type: ignore[misc]
    """ResNet-18 (2-2-2-2 BasicBlocks), CIFAR stem, ``in_channels`` inputs, base width w."""

    conv1: nn.Conv2d
    bn1: nn.Module
    relu: nn.ReLU
    maxpool: nn.Module
    layer1: nn.Sequential
    layer2: nn.Sequential
    layer3: nn.Sequential
    layer4: nn.Sequential
    avgpool: nn.AdaptiveAvgPool2d
    fc: nn.Linear

    def __init__(self, in_channels: int, num_classes: int, width: int = 64,
                 norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d) -> None:
        nn.Module.__init__(self)
        # The attributes ResNet._make_layer reads; BasicBlock requires groups 1, base width 64.
        self._norm_layer = norm_layer
        self.inplanes = width
        self.dilation = 1
        self.groups = 1
        self.base_width = 64
        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = norm_layer(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity()
        self.layer1 = ResNet._make_layer(self, BasicBlock, width, 2)
        self.layer2 = ResNet._make_layer(self, BasicBlock, 2 * width, 2, stride=2)
        self.layer3 = ResNet._make_layer(self, BasicBlock, 4 * width, 2, stride=2)
        self.layer4 = ResNet._make_layer(self, BasicBlock, 8 * width, 2, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(8 * width * BasicBlock.expansion, num_classes)

    @property
    def head(self) -> nn.Module:  # type: ignore[override]
        """The final linear layer."""
        return self.fc

    def features(self, x: Tensor) -> Tensor:
        """Everything before the final linear layer: the pooled (B, 8w) features."""
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(self.maxpool(x)))))
        pooled: Tensor = self.avgpool(x)
        return pooled.flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        """The logits (torchvision's forward, through `features`)."""
        logits: Tensor = self.fc(self.features(x))
        return logits


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
        return CifarResNet18(input_shape[0], num_classes, width)


def resnet18(in_channels: int, num_classes: int, width: int, generator: torch.Generator,
             device: str | torch.device = "cpu") -> CifarResNet18:
    """A freshly initialized CIFAR-stem ResNet-18 with BatchNorm on ``device`` (fp32 weights)."""
    net = ResNet18().build((in_channels, 1, 1), num_classes, width, (), generator, device)
    assert isinstance(net, CifarResNet18)
    return net
