"""The per-epoch evaluation of a class-channel run: the paper's test error, and the diagnosis.

Beside the paper's measure (`error_count` on test inputs with all-zero class channels, the model
in evaluation mode), each epoch measures why a model does or does not rely on the channels:

* `recalibrated`: a copy of the model whose BatchNorm running statistics are re-estimated on
  zero-channel training inputs, so that its test error uses statistics of the distribution it
  is evaluated on (the trained model is untouched; NaN for a model without running statistics);
* `channel_following`: the share of test images, each given the class channel of another class
  ((y + 1) mod K), that the model assigns to the channel's class: 1 = the channel decides,
  about 1/K or less = the image decides;
* `feature_variance_ratio`: the within-class variance of the penultimate features of training
  inputs with their class channels, over their total variance (traces): the "minimum variance
  features" quantity of the paper's title, measured inside the network.

These functions take a model and tensors and know nothing of runs or files; the trainer
(`labaug.train.resnet`) feeds them its resident data.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

Forward = Callable[[Tensor], Tensor]


def shifted_classes(labels: Tensor, num_classes: int) -> Tensor:
    """The class whose channel each test image is given for `channel_following`: (y + 1) mod K."""
    return (labels + 1) % num_classes


def error_count(forward: Forward, batches: Iterable[tuple[Tensor, Tensor]]) -> Tensor:
    """How many (inputs, labels) pairs ``forward`` gets wrong (a 0-d int64 tensor, no host
    sync)."""
    wrong: Tensor | None = None
    for x, y in batches:
        miss = (forward(x).argmax(dim=1) != y).sum()
        wrong = miss if wrong is None else wrong + miss
    return wrong if wrong is not None else torch.zeros((), dtype=torch.int64)


def channel_following(predicted: Tensor, channel_class: Tensor) -> Tensor:
    """The share of images assigned to the class whose channel they carry (a 0-d float64
    tensor on their device: no host sync; NaN for no images)."""
    return (predicted == channel_class).to(torch.float64).mean()


def feature_variance_ratio(features: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """tr(within-class covariance) / tr(total covariance) of ``features`` (N, D): 0 when the
    features are a function of the class, near 1 when they do not depend on it, NaN for
    constant features (a 0-d float64 tensor on their device: no host sync)."""
    f = features.to(torch.float64).flatten(1)
    centred = f - f.mean(dim=0)
    total = (centred * centred).sum()
    sums = torch.zeros(num_classes, f.shape[1], dtype=torch.float64, device=f.device)
    sums.index_add_(0, labels, f)
    counts = torch.bincount(labels, minlength=num_classes).clamp(min=1).to(torch.float64)
    within = f - (sums / counts[:, None])[labels]
    spread = (within * within).sum()
    return torch.where(total > 0, spread / total, torch.full_like(total, float("nan")))


def has_running_stats(model: nn.Module) -> bool:
    """Whether ``model`` normalizes with running statistics (BatchNorm) in evaluation mode."""
    return any(isinstance(m, _BatchNorm) and m.track_running_stats for m in model.modules())


@torch.no_grad()
def recalibrated(model: nn.Module, inputs: Iterable[Tensor],
                 forward: Callable[[nn.Module, Tensor], Tensor] | None = None,
                 into: nn.Module | None = None) -> nn.Module:
    """A copy of ``model`` in evaluation mode whose BatchNorm running statistics are the plain
    average over ``inputs`` (batches run in training mode, momentum None); its weights, and
    ``model`` itself, are untouched. ``forward(net, x)`` runs a batch (default ``net(x)``;
    the trainer passes its autocast). ``into``: an earlier copy to overwrite (a copy of the same
    architecture; saves allocating one every epoch)."""
    if into is None:
        twin = copy.deepcopy(model)
    else:
        twin = into
        twin.load_state_dict(model.state_dict())
    for m in twin.modules():
        if isinstance(m, _BatchNorm) and m.track_running_stats:
            m.reset_running_stats()
            m.momentum = None    # a cumulative average over the batches, not an EMA
    twin.train()
    for x in inputs:
        if forward is None:
            twin(x)
        else:
            forward(twin, x)
    return twin.eval()
