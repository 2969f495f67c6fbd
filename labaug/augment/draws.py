"""A method's random draws for one epoch, shared by both trainers (the linear sweep and the
class-channel trainer): one generator per model, keyed by (seed, scope, method, value), drawn on
the CPU and copied to the device once per epoch, so the draws are the same on every device.

Not a method module: `labaug.augment` skips it when it discovers the methods.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from labaug.augment.base import Augmentation, draw_partners, epoch_partners, hp_key
from labaug.rng import numpy_rng


class EpochDraws:
    """A method's random draws for a run or a sweep: one generator per model (hyperparameter
    value), keyed by (seed, value)."""

    def __init__(self, method: Augmentation, seed: int, scope: tuple[str, ...],
                 values: np.ndarray, per_batch: bool,
                 spatial: tuple[int, int] | None) -> None:
        self.method, self.values, self.per_batch, self.spatial = method, values, per_batch, spatial
        self.rngs = [numpy_rng(seed, *scope, method.name, hp_key(v)) for v in values]
        self.partner_rng = numpy_rng(seed, *scope, "partner") if method.needs_partner else None
        self._buffers: dict[str, tuple[np.ndarray, Tensor]] = {}

    def _stacked(self, key: str, arrays: list[np.ndarray], dtype: torch.dtype | None) -> Tensor:
        """The models' arrays of one draw, stacked on axis 2, in buffers kept from epoch to
        epoch (a fresh 4 MB array an epoch costs more in page faults than the copy itself)."""
        first = arrays[0]
        target = dtype if dtype is not None and np.issubdtype(first.dtype, np.floating) \
            else torch.from_numpy(first[:0]).dtype
        shape = (len(arrays), *first.shape)
        held = self._buffers.get(key)
        if held is None or held[0].shape != shape or held[0].dtype != first.dtype \
                or held[1].dtype != target:
            out_shape = (*first.shape[:2], len(arrays), *first.shape[2:])
            held = (np.empty(shape, first.dtype), torch.empty(out_shape, dtype=target))
            self._buffers[key] = held
        model_major, out = held
        for m, array in enumerate(arrays):
            model_major[m] = array
        return out.copy_(torch.from_numpy(model_major).movedim(0, 2))

    def epoch(self, n: int, batch: int, device: torch.device, dtype: torch.dtype | None = None
              ) -> tuple[dict[str, Tensor], list[Tensor] | None]:
        """This epoch's draws over n examples, each (steps, batch or 1, M, ...), and each step's
        partner permutation (`labaug.augment.base.epoch_partners`), or None without partners.

        One copy to ``device`` per epoch; floating draws are cast to ``dtype`` when given. On the
        CPU the arrays are buffers that the next epoch overwrites."""
        steps = math.ceil(n / batch)
        per_model = [self.method.draw(rng, float(v), steps, batch, self.per_batch, self.spatial)
                     for rng, v in zip(self.rngs, self.values, strict=True)]
        draws = {key: self._stacked(key, [d[key] for d in per_model], dtype).to(device)
                 for key in per_model[0]}
        partners = None
        if self.partner_rng is not None:
            keys = draw_partners(self.partner_rng, steps, batch)
            partners = epoch_partners(keys, n, device)
        return draws, partners


def step_slice(draws: dict[str, Tensor], step: int, b: int) -> dict[str, Tensor]:
    """One step's draws, each (b or 1, M, ...): the first b examples, or the per-batch draw."""
    return {k: v[step, :b] for k, v in draws.items()}
