"""The model interface of the class-channel runs: one small object per model, as for methods.

A model object says what it is (name, title, one-sentence summary) and which ``resnet.*`` keys
shape it (``settings``: ``width`` for the ResNets, ``mlp_hidden`` for the MLP), and builds a
freshly initialized network from an explicit CPU generator, so one seed gives the same initial
model on every device. The object itself is plain Python: the workflow reads the registry when
it builds its DAG without importing torch; `network` imports the PyTorch code
(`labaug.models.nets`) when a run builds one. Every network is a
`labaug.models.nets.ClassChannelNet` (``features`` then ``head``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar, Literal

if TYPE_CHECKING:
    import torch

    from labaug.models.nets import ClassChannelNet

Setting = Literal["width", "mlp_hidden"]
"""A ``resnet.*`` key that can shape a model."""


class Model:
    """One model of the class-channel runs. Subclass it in a module of `labaug.models`, register.

    Class attributes say what the model is; `network` says what it computes; `build` makes one.
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
        """Write every parameter and buffer from ``generator`` (default:
        `labaug.models.nets.init_weights`)."""
        from labaug.models.nets import init_weights

        init_weights(net, generator)

    def build(self, input_shape: tuple[int, int, int], num_classes: int, width: int,
              hidden: Sequence[int], generator: torch.Generator,
              device: str | torch.device = "cpu") -> ClassChannelNet:
        """A freshly initialized network on ``device`` (fp32 weights) for inputs of
        ``input_shape`` (2C, H, W) and ``num_classes`` classes."""
        import torch

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
