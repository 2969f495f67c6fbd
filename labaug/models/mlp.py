"""A ReLU MLP over the flattened image and class channels: small enough for a laptop CPU.

It flattens (2C, H, W) and applies Linear + ReLU layers of ``resnet.mlp_hidden`` widths, then a
linear head (`labaug.models.nets.ClassChannelMLP`). No convolution shares weights over the class
vector's pixels, and no layer normalizes, so its weight decay acts on every weight as in the
paper's linear model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from labaug.models import register
from labaug.models.base import Model

if TYPE_CHECKING:
    from labaug.models.nets import ClassChannelNet


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
        from labaug.models.nets import ClassChannelMLP

        return ClassChannelMLP(math.prod(input_shape), hidden, num_classes)
