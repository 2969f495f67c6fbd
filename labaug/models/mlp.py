"""A ReLU MLP over the flattened image and class channels: small enough for a laptop CPU.

It flattens (2C, H, W) and applies Linear + ReLU layers of ``resnet.mlp_hidden`` widths, then a
linear head. No convolution shares weights over the class vector's pixels, and no layer
normalizes, so its weight decay acts on every weight as in the paper's linear model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from labaug.models import register
from labaug.models.base import ClassChannelNet, Model


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


@register
class MLP(Model):
    """A ReLU MLP with hidden widths ``resnet.mlp_hidden``."""

    name = "mlp"
    title = "ReLU MLP"
    summary = ("a ReLU MLP over the flattened image and class channels (hidden widths "
               "resnet.mlp_hidden), with no convolution and no normalization")
    settings = ("mlp_hidden",)

    def network(self, input_shape: tuple[int, int, int], num_classes: int, width: int,
                hidden: Sequence[int]) -> ClassChannelNet:
        """Flatten, hidden ReLU layers, linear head."""
        return ClassChannelMLP(math.prod(input_shape), hidden, num_classes)
