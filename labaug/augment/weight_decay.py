"""Weight decay: no change to the batch, a coupled L2 term lambda * w in the optimizer."""

from __future__ import annotations

from labaug.augment import register
from labaug.augment.base import Augmentation


@register
class WeightDecay(Augmentation):
    """Standard training with coupled weight decay, as ``torch.optim.Adam(weight_decay=lambda)``."""

    name = "weight_decay"
    title = "Weight decay"
    hp_symbol = r"\lambda"
    hp_words = "weight decay"
    color = "tab:blue"
    summary = ("weight decay leaves inputs and one-hot targets alone and adds the coupled L2 "
               "term lambda * w to the gradient")

    def decay(self, value: float) -> float:
        """The coefficient lambda itself."""
        return float(value)
