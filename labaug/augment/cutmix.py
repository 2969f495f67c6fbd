"""CutMix (Yun et al. 2019): paste a box from a partner image; the label weight is its area.

lambda ~ Beta(alpha, alpha); a box with area fraction about 1 - lambda, centred uniformly on the
image, is clipped to the image and cut from the partner, and the target becomes
lambda' * own + (1 - lambda') * partner's with lambda' = 1 - (clipped box area) / (H W), the
area actually pasted. The box covers every channel (class channels included). alpha = 0 means
lambda = 1: an empty box, plain training. CutMix needs a spatial layout, so it runs on images
only (the synthetic vectors have none); it must mix inputs, so a linear sweep mixes them too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch
    from torch import Tensor

from labaug.augment import register
from labaug.augment.base import Augmentation, Draws
from labaug.augment.mixup import beta_weights, mix_targets


def draw_boxes(rng: np.random.Generator, lam: np.ndarray, height: int,
               width: int) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (..., 4) = (row0, row1, col0, col1), half-open, for weights ``lam``; and lambda'.

    Side lengths are round(H sqrt(1 - lam)) and round(W sqrt(1 - lam)); the centre is uniform
    over the pixels; clipping to the image can shrink the box, and lambda' = 1 - area / (H W)
    is the label weight that matches the pixels actually pasted.
    """
    cut = np.sqrt(1.0 - lam)
    cut_h, cut_w = np.rint(height * cut).astype(np.int64), np.rint(width * cut).astype(np.int64)
    cy = rng.integers(0, height, size=lam.shape)
    cx = rng.integers(0, width, size=lam.shape)
    r0, r1 = np.clip(cy - cut_h // 2, 0, height), np.clip(cy - cut_h // 2 + cut_h, 0, height)
    c0, c1 = np.clip(cx - cut_w // 2, 0, width), np.clip(cx - cut_w // 2 + cut_w, 0, width)
    boxes = np.stack([r0, r1, c0, c1], axis=-1)
    area = (r1 - r0) * (c1 - c0)
    return boxes, 1.0 - area / float(height * width)


def box_mask(boxes: Tensor, height: int, width: int,
             dtype: torch.dtype | None = None) -> Tensor:
    """Masks (..., H, W) that are 1 inside each half-open box (..., 4), as ``dtype`` (default
    bool).

    A box is the outer product of a row and a column indicator, built in one pass.
    """
    import torch

    dtype = torch.bool if dtype is None else dtype
    rows = torch.arange(height, device=boxes.device)
    cols = torch.arange(width, device=boxes.device)
    r0, r1, c0, c1 = (boxes[..., i, None] for i in range(4))
    in_rows = ((rows >= r0) & (rows < r1)).to(dtype)
    in_cols = ((cols >= c0) & (cols < c1)).to(dtype)
    if dtype == torch.bool:
        return in_rows[..., :, None] & in_cols[..., None, :]
    return in_rows[..., :, None] * in_cols[..., None, :]


@register
class CutMix(Augmentation):
    """Paste a Beta(alpha, alpha)-sized box from a partner; targets weighted by pasted area."""

    name = "cutmix"
    title = "CutMix"
    hp_symbol = r"\alpha"
    hp_words = "CutMix Beta parameter"
    color = "tab:red"
    summary = ("CutMix pastes a box of area about (1 - lambda) from a partner image, "
               "lambda ~ Beta(alpha, alpha), and weights the partner's target by the pasted area")
    experiments = frozenset({"binary_images", "class_channels"})
    mixes_inputs = True
    needs_partner = True
    needs_spatial = True

    def draw(self, rng: np.random.Generator, value: float, steps: int, batch: int,
             per_batch: bool, spatial: tuple[int, int] | None) -> dict[str, np.ndarray]:
        """The epoch's boxes (steps, width, 4) and label weights lambda' (steps, width)."""
        if spatial is None:
            raise ValueError("CutMix needs images with a spatial layout (H, W)")
        lam = beta_weights(rng, value, (steps, 1 if per_batch else batch))
        boxes, weight = draw_boxes(rng, lam, *spatial)
        return {"box": boxes, "lam": weight}

    def apply(self, x: Tensor, t: Tensor, values: Tensor, draws: Draws,
              partner: Tensor | None) -> tuple[Tensor, Tensor]:
        """Paste each model's box from the partner into x (B, M or 1, C, H, W); mix targets."""
        assert partner is not None
        height, width = x.shape[-2:]
        import torch

        mask = box_mask(draws["box"], height, width, x.dtype)   # (B or 1, M, H, W)
        # lerp with weight 0 or 1 is exactly x or its partner (and faster than torch.where).
        pasted = torch.lerp(x, x[partner], mask.unsqueeze(-3))   # (B, M, C, H, W)
        return pasted, mix_targets(t, draws["lam"], partner)
