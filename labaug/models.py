"""Models of the class-channel experiment: ResNet-18 (the paper's) and a small ReLU MLP.

ResNet-18 has the CIFAR stem and a configurable base width, built from torchvision's blocks.
The MLP (config ``resnet.model: mlp``) flattens the image and its class channels and applies
ReLU layers of ``resnet.mlp_hidden`` widths: small enough to train on the whole Fashion-MNIST
training set on a laptop CPU.

torchvision's `ResNet` hard-codes 64/128/256/512 channels and an ImageNet stem (7x7 stride-2 conv
and a max-pool). `CifarResNet18` keeps torchvision's `ResNet.forward`, `_make_layer` and
`BasicBlock`, and only sets the attributes those use: a 3x3 stride-1 stem conv, no max-pool,
stages of width w, 2w, 4w, 8w (w = 64 is the standard model) and `in_channels` inputs.

Parameters are created on the meta device (no global RNG is touched) and then initialized as
torchvision does (Kaiming-normal convs, BN weight 1 / bias 0, nn.Linear's default head) from an
explicit CPU generator, so one seed gives the same initial model on every device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, ResNet


class CifarResNet18(ResNet):  # type: ignore[misc]
    """ResNet-18 (2-2-2-2 BasicBlocks), CIFAR stem, ``in_channels`` inputs, base width w."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 64) -> None:
        nn.Module.__init__(self)
        # The attributes ResNet._make_layer reads; BasicBlock requires groups 1, base width 64.
        self._norm_layer = nn.BatchNorm2d
        self.inplanes = width
        self.dilation = 1
        self.groups = 1
        self.base_width = 64
        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity()
        self.layer1 = self._make_layer(BasicBlock, width, 2)
        self.layer2 = self._make_layer(BasicBlock, 2 * width, 2, stride=2)
        self.layer3 = self._make_layer(BasicBlock, 4 * width, 2, stride=2)
        self.layer4 = self._make_layer(BasicBlock, 8 * width, 2, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(8 * width * BasicBlock.expansion, num_classes)


@torch.no_grad()
def init_resnet(model: nn.Module, generator: torch.Generator) -> None:
    """torchvision's ResNet initialization, drawn from ``generator`` (a CPU generator)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            w = torch.empty(m.weight.shape, dtype=torch.float32)
            nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu", generator=generator)
            m.weight.copy_(w)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
            m.reset_running_stats()
        elif isinstance(m, nn.Linear):
            # nn.Linear.reset_parameters: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias.
            bound = 1.0 / math.sqrt(m.in_features)
            w = torch.empty(m.weight.shape, dtype=torch.float32)
            b = torch.empty(m.out_features, dtype=torch.float32)
            nn.init.uniform_(w, -bound, bound, generator=generator)
            nn.init.uniform_(b, -bound, bound, generator=generator)
            m.weight.copy_(w)
            m.bias.copy_(b)


def resnet18(
    in_channels: int, num_classes: int, width: int, generator: torch.Generator,
    device: str | torch.device = "cpu",
) -> CifarResNet18:
    """A freshly initialized CIFAR-stem ResNet-18 on ``device`` (fp32 weights)."""
    with torch.device("meta"):
        model = CifarResNet18(in_channels, num_classes, width)
    model.to_empty(device=torch.device(device))
    init_resnet(model, generator)
    return model


class ClassChannelMLP(nn.Sequential):
    """Flatten (C, H, W), then Linear + ReLU per hidden width, then a linear head."""

    def __init__(self, in_features: int, hidden: Sequence[int], num_classes: int) -> None:
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, num_classes))
        super().__init__(*layers)


MODELS = ("resnet18", "mlp")
"""The models config ``resnet.model`` can name."""


def build_model(
    name: str, input_shape: tuple[int, int, int], num_classes: int, width: int,
    hidden: Sequence[int], generator: torch.Generator, device: str | torch.device = "cpu",
) -> nn.Module:
    """A freshly initialized class-channel model: ``resnet18`` (base ``width``) or ``mlp``."""
    if name == "resnet18":
        return resnet18(input_shape[0], num_classes, width, generator, device)
    if name == "mlp":
        with torch.device("meta"):
            model = ClassChannelMLP(math.prod(input_shape), hidden, num_classes)
        model.to_empty(device=torch.device(device))
        init_resnet(model, generator)     # nn.Linear's default initialization, seeded
        return model
    raise ValueError(f"unknown model {name!r} (config resnet.model); choose from "
                     f"{', '.join(MODELS)}")


def describe_model(name: str, width: int, hidden: Sequence[int]) -> str:
    """The model in words, for result attributes and figure titles."""
    if name == "resnet18":
        return f"ResNet-18, width {width}"
    return f"ReLU MLP, hidden {'-'.join(str(h) for h in hidden)}"
