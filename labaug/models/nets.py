"""The networks of the class-channel models, in PyTorch: what `labaug.models` builds.

Every network is a `ClassChannelNet`: ``features`` maps a batch to the penultimate features
(B, D) and ``head`` maps those to the logits, so the trainer's diagnosis
(`labaug.train.evaluation`) reads the same features from every model. The registry modules
(`labaug.models.resnet18`, ...) import this module only when they build a network, so the
registry itself, which the workflow reads when it builds its DAG, needs neither torch nor
torchvision.

`CifarResNet18` keeps torchvision's `ResNet._make_layer` and `BasicBlock` and only sets the
attributes those read: a 3x3 stride-1 stem conv, no max-pool, stages of width w, 2w, 4w, 8w
(w = 64 is the standard model), ``in_channels`` inputs, and the normalization layer (BatchNorm,
or `group_norm`). `NormFreeResNet18` is the same network with no normalization and SkipInit
residual scales; `ClassChannelMLP` a ReLU MLP. Parameters are written by `init_weights`
(torchvision's ResNet initialization, from an explicit CPU generator), which refuses to leave
any parameter unwritten.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, ResNet


class ClassChannelNet(nn.Module):
    """A network of the class-channel runs: ``forward(x) = head(features(x))``."""

    head: nn.Module

    def features(self, x: Tensor) -> Tensor:
        """The penultimate features (B, D) of a batch of inputs (B, 2C, H, W)."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        """The logits (B, K)."""
        logits: Tensor = self.head(self.features(x))
        return logits


NORMS = (nn.BatchNorm2d, nn.GroupNorm)


@torch.no_grad()
def init_weights(model: nn.Module, generator: torch.Generator,
                 conv_mode: Literal["fan_in", "fan_out"] = "fan_out") -> None:
    """torchvision's ResNet initialization, drawn from ``generator`` (a CPU generator):
    Kaiming-normal convolutions (``conv_mode``), normalization weight 1 and bias 0, nn.Linear's
    default U(-1/sqrt(fan_in), 1/sqrt(fan_in)), zero convolution biases. A module that holds a
    parameter or buffer this does not know how to write (a model's own scalar, say) must be
    written by the model's `Model.initialize` after it; any left unwritten is an error."""
    written: set[int] = set()
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            w = torch.empty(m.weight.shape, dtype=torch.float32)
            nn.init.kaiming_normal_(w, mode=conv_mode, nonlinearity="relu", generator=generator)
            m.weight.copy_(w)
            written.add(id(m.weight))
            if m.bias is not None:
                m.bias.zero_()
                written.add(id(m.bias))
        elif isinstance(m, NORMS):
            if m.weight is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
                written.update((id(m.weight), id(m.bias)))
            if isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()
                written.update(id(b) for b in m.buffers())
        elif isinstance(m, nn.Linear):
            bound = 1.0 / math.sqrt(m.in_features)
            w = torch.empty(m.weight.shape, dtype=torch.float32)
            b = torch.empty(m.out_features, dtype=torch.float32)
            nn.init.uniform_(w, -bound, bound, generator=generator)
            nn.init.uniform_(b, -bound, bound, generator=generator)
            m.weight.copy_(w)
            m.bias.copy_(b)
            written.update((id(m.weight), id(m.bias)))
    for m in model.modules():
        init = getattr(m, "reset_own_parameters", None)
        if callable(init):
            init()
            written.update(id(p) for p in m.parameters(recurse=False))
    unwritten = [name for name, p in [*model.named_parameters(), *model.named_buffers()]
                 if id(p) not in written]
    if unwritten:
        raise ValueError(f"{type(model).__name__}: no initialization for {', '.join(unwritten)}")


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


MAX_GROUPS = 32


def group_count(channels: int) -> int:
    """The number of groups of a layer with ``channels`` channels (see the module docstring)."""
    most = max(1, min(MAX_GROUPS, channels // 2))
    return max(g for g in range(1, most + 1) if channels % g == 0)


def group_norm(channels: int) -> nn.GroupNorm:
    """A GroupNorm layer for ``channels`` channels with `group_count` groups."""
    return nn.GroupNorm(group_count(channels), channels)


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


class ClassChannelMLP(ClassChannelNet):
    """Flatten (C, H, W), then Linear + ReLU per hidden width, then a linear head."""

    def __init__(self, in_features: int, hidden: Sequence[int], num_classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_classes)

    def features(self, x: Tensor) -> Tensor:
        """The last hidden layer's activations (B, hidden[-1])."""
        out: Tensor = self.body(x)
        return out


def resnet18(in_channels: int, num_classes: int, width: int, generator: torch.Generator,
             device: str | torch.device = "cpu") -> CifarResNet18:
    """A freshly initialized CIFAR-stem ResNet-18 with BatchNorm on ``device`` (fp32 weights)."""
    with torch.device("meta"):
        net = CifarResNet18(in_channels, num_classes, width)
    net.to_empty(device=torch.device(device))
    init_weights(net, generator)
    return net
