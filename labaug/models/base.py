"""The model interface of the class-channel runs: one small object per model, as for methods.

A model object says what it is (name, title, one-sentence summary) and which ``resnet.*`` keys
shape it (``settings``: ``width`` for the ResNets, ``mlp_hidden`` for the MLP), and builds a
freshly initialized network from an explicit CPU generator, so one seed gives the same initial
model on every device. Every network it builds is a `ClassChannelNet`: ``features`` maps a batch
to the penultimate features (B, D) and ``head`` maps those to the logits, so the trainer's
diagnosis (`labaug.train.evaluation`) reads the same features from every model.

Parameters are created on the meta device (no global RNG is touched, no memory is spent twice)
and then written by `init_weights`, which refuses to leave any parameter unwritten.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar, Literal

import torch
from torch import Tensor, nn

Setting = Literal["width", "mlp_hidden"]
"""A ``resnet.*`` key that can shape a model."""


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


class Model:
    """One model of the class-channel runs. Subclass it in a module of `labaug.models`, register.

    Class attributes say what the model is; `build` makes one.
    """

    name: ClassVar[str]
    """The model's name in config (``resnet.models``), paths and result files (``model`` dim)."""
    title: ClassVar[str]
    """Its name in figure titles and tables."""
    summary: ClassVar[str]
    """One sentence: what it is (captions, README)."""
    settings: ClassVar[tuple[Setting, ...]] = ()
    """The ``resnet.*`` keys that shape it; only these are part of its runs' configuration."""
    channels_last: ClassVar[bool] = True
    """Whether it runs channels_last on a GPU (False where a layer has no channels_last kernel
    and would convert every activation to and fro)."""

    def network(self, input_shape: tuple[int, int, int], num_classes: int, width: int,
                hidden: Sequence[int]) -> ClassChannelNet:
        """The network's modules (built on the meta device; `build` initializes them)."""
        raise NotImplementedError

    def initialize(self, net: ClassChannelNet, generator: torch.Generator) -> None:
        """Write every parameter and buffer from ``generator`` (default: `init_weights`)."""
        init_weights(net, generator)

    def build(self, input_shape: tuple[int, int, int], num_classes: int, width: int,
              hidden: Sequence[int], generator: torch.Generator,
              device: str | torch.device = "cpu") -> ClassChannelNet:
        """A freshly initialized network on ``device`` (fp32 weights) for inputs of
        ``input_shape`` (2C, H, W) and ``num_classes`` classes."""
        with torch.device("meta"):
            net = self.network(input_shape, num_classes, width, hidden)
        net.to_empty(device=torch.device(device))
        self.initialize(net, generator)
        return net

    def describe(self, width: int, hidden: Sequence[int]) -> str:
        """The model in words with its size, for result attributes and figure titles."""
        if "width" in self.settings:
            return f"{self.title}, width {width}"
        if "mlp_hidden" in self.settings:
            return f"{self.title}, hidden {'-'.join(str(h) for h in hidden)}"
        return self.title

    def __repr__(self) -> str:
        """The model's registered name."""
        return f"<model {self.name}>"


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
