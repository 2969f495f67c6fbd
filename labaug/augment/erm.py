"""ERM: plain training, the baseline of the class-channel runs (no augmentation, no weight decay).

Every sweep's grid point 0 is already ERM (lambda = 0, a = 0, alpha = 0), so ERM adds no grid to
the linear sweeps; it runs only beside the methods of the class-channel experiment, where each
method has one value (or a few) and ERM is the reference they are compared with.
"""

from __future__ import annotations

from labaug.augment import register
from labaug.augment.base import Augmentation


@register
class ERM(Augmentation):
    """Inputs and one-hot targets unchanged, no weight decay."""

    name = "erm"
    title = "ERM"
    hp_symbol = "-"
    hp_words = "no hyperparameter"
    color = "black"
    summary = ("ERM (plain training) leaves inputs and one-hot targets alone and adds no weight "
               "decay")
    experiments = frozenset({"class_channels"})
    has_hp = False
