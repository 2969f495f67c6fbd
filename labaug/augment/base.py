"""The label-augmentation interface: one small object per method, shared by both trainers.

A method turns a batch and its (soft) targets into augmented inputs and soft targets, the way
timm's ``Mixup`` does, but every random number comes from generators seeded by (run seed,
purpose), draws are vectorized per epoch, and partners come from a drawn permutation.

Shapes. ``apply`` always sees a model axis M, so one implementation serves the batched linear
sweep (M models with their own hyperparameter values and draws) and the ResNet trainer (M = 1):

* ``x``: inputs (B, M or 1, *shape), or, for a method that may act on logits, the logits
  (B, M) of a linear model: w . (l x_i + (1 - l) x_j) = l (w . x_i) + (1 - l) (w . x_j), so
  mixing logits is exact for a linear model, and a method that leaves inputs alone can too;
* ``t``: soft targets (B, M or 1, K), one-hot before augmentation (binary tasks: K = 2);
* ``values``: the hyperparameter of each model, (M,);
* ``draws``: this step's slice of `draw`'s arrays, each (B or 1, M, ...);
* ``partner``: the batch permutation (B,) that pairs each example with its partner.

Weight decay is not an augmentation of the batch: a method says through `decay` which coupled
L2 coefficient the optimizer applies, and its `apply` is the identity.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np

if TYPE_CHECKING:   # the registry imports without torch; the arithmetic imports it to run
    import torch
    from torch import Tensor

Experiment = Literal["synthetic", "binary_images", "class_channels"]
"""Where a method can run: synthetic vectors (Figs. 1, 6), binary image sweeps (Figs. 2, 3, 7),
multi-class class-channel runs (Fig. 4)."""

EXPERIMENTS: tuple[Experiment, ...] = ("synthetic", "binary_images", "class_channels")

Draws = Mapping[str, "Tensor"]


def hp_key(value: float) -> str:
    """A seed purpose that names a hyperparameter value exactly."""
    return f"{float(value):.17g}"


def draw_partners(rng: np.random.Generator, steps: int, batch: int) -> np.ndarray:
    """One epoch of partner keys (steps, batch); `partner_permutation` turns a row into pairs."""
    return rng.random(size=(steps, batch))


def partner_permutation(keys: Tensor, b: int) -> Tensor:
    """The partner of each of the b examples of a step: the argsort of its first b keys."""
    import torch

    return torch.argsort(keys[:b])


def epoch_partners(keys: np.ndarray, n: int, device: torch.device | str = "cpu") -> list[Tensor]:
    """Every step's `partner_permutation` for an epoch over n examples, on ``device``.

    ``keys`` is the epoch's (steps, batch) draw; step s has min(batch, n - s * batch) examples.
    The full steps are sorted in one call on the host (numpy's argsort is about four times
    faster than torch's here; the keys are distinct, so both give the same permutation) and
    copied to the device once.
    """
    import torch

    steps, batch = keys.shape
    full = min(steps, n // batch)
    perms = list(torch.from_numpy(np.argsort(keys[:full], axis=1)).to(device).unbind(0))
    if full < steps:
        last = np.argsort(keys[full, :n - full * batch])
        perms.append(torch.from_numpy(last).to(device))
    return perms


def as_dtype(values: Tensor, dtype: torch.dtype) -> Tensor:
    """``values`` in ``dtype``; no operator call when it already is (a step calls this often)."""
    return values if values.dtype == dtype else values.to(dtype)


def along(values: Tensor, ndim: int) -> Tensor:
    """Append singleton axes to ``values`` (B or 1, M) so that it broadcasts over ndim axes."""
    return values.reshape(*values.shape, *([1] * (ndim - values.ndim)))


class Augmentation:
    """One label-augmentation method. Subclass it in a module of `labaug.augment` and register.

    Class attributes say what the method is and needs; the methods do the work. The base class
    is the identity augmentation with no draws and no weight decay.
    """

    name: ClassVar[str]
    """The method's name in config, file paths and result files (``ds.sel(augmentation=...)``)."""
    title: ClassVar[str]
    """Its name in figure titles and legends."""
    hp_symbol: ClassVar[str]
    """Its hyperparameter's symbol, in matplotlib mathtext (``r"\\alpha"``)."""
    hp_words: ClassVar[str]
    """Its hyperparameter in words, for axis labels and captions."""
    color: ClassVar[str]
    """Its colour in every figure."""
    summary: ClassVar[str]
    """One sentence: what it does to a batch (report captions, README)."""
    experiments: ClassVar[frozenset[Experiment]] = frozenset(EXPERIMENTS)
    """The experiments it applies to; the workflow runs it on exactly these."""
    mixes_inputs: ClassVar[bool] = False
    """True when it must see inputs: it cannot be applied to a linear model's logits."""
    needs_partner: ClassVar[bool] = False
    """True when it pairs each example with a partner from the batch."""
    has_hp: ClassVar[bool] = True
    """False for a method with no hyperparameter (ERM): no grid, no ``resnet.hp`` entry; its one
    run has the hyperparameter value 0."""
    hp_maximum: ClassVar[float | None] = None
    """Exclusive upper bound of the hyperparameter (its lower bound is 0), or None."""
    needs_spatial: ClassVar[bool] = False
    """True when its draws need the image's (H, W)."""

    def decay(self, value: float) -> float:
        """The coupled L2 (weight-decay) coefficient this method adds to the optimizer."""
        return 0.0

    def draw(self, rng: np.random.Generator, value: float, steps: int, batch: int,
             per_batch: bool, spatial: tuple[int, int] | None) -> dict[str, np.ndarray]:
        """All of one model's random draws for one epoch, each array (steps, batch or 1, ...)."""
        return {}

    def apply(self, x: Tensor, t: Tensor, values: Tensor, draws: Draws,
              partner: Tensor | None) -> tuple[Tensor, Tensor]:
        """Augment a batch: (inputs or logits, soft targets) -> (inputs or logits, soft targets)."""
        return x, t

    def logit_grad(self, grad: Tensor, values: Tensor, draws: Draws,
                   partner: Tensor | None) -> Tensor:
        """The transpose of `apply` on logits: d loss / d logits (B, M) from d loss / d its output.

        A linear sweep trains a method that acts on logits with this closed-form backward pass
        instead of autograd. `apply` is linear in the logits for every such method, so this is
        the adjoint of that map; a method whose `apply` changes logits must override it (the
        test suite checks it against autograd for every registered method).
        """
        return grad

    def hp_label(self) -> str:
        """Axis label: the hyperparameter in words and symbol."""
        return f"{self.hp_words} ${self.hp_symbol}$"

    def __repr__(self) -> str:
        """The method's registered name."""
        return f"<augmentation {self.name}>"
