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

These functions take a model and tensors and know nothing of runs or files; `Evaluator` applies
them to a run's model and resident data (`labaug.train.placement.Resident`) once per epoch.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from labaug.models.nets import ClassChannelNet
from labaug.train.placement import Placement, Resident

Forward = Callable[[Tensor], Tensor]

EVAL_BATCH = 1000
"""Images per evaluation chunk."""

DIAGNOSIS = ("test_error_recalibrated", "channel_following", "feature_variance_ratio")
"""What `Evaluator.diagnose` measures, beside the paper's test error."""


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


class Evaluator:
    """The per-epoch evaluation of one run: the paper's test error and the diagnosis, on the
    run's resident data, under its autocast; it never changes the model or its state.

    ``n_diagnosis``: the diagnosis uses the first that many training and test images;
    ``recalibration_batch``: the batch size of the BatchNorm re-estimation (the training one).
    """

    def __init__(self, model: ClassChannelNet, data: Resident, where: Placement,
                 n_diagnosis: int, recalibration_batch: int) -> None:
        self.model, self.data, self.where = model, data, where
        self.n_diagnosis, self.recalibration_batch = n_diagnosis, recalibration_batch
        self._twin: nn.Module | None = None     # the recalibrated copy, reused every epoch

    def _forward(self, model: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
        """``model(x)`` under the run's autocast."""
        with self.where.autocast():
            return model(x)

    def _chunks(self, images: Tensor, labels: Tensor, channels: Tensor | None,
                size: int = EVAL_BATCH) -> Iterator[tuple[Tensor, Tensor]]:
        """(inputs, labels) in chunks of ``size``; channels as in `Resident.inputs`."""
        for start in range(0, len(labels), size):
            part = slice(start, start + size)
            yield (self.data.inputs(images[part],
                                    None if channels is None else channels[part]), labels[part])

    @torch.no_grad()
    def test_error(self, class_channels: bool = False) -> float:
        """Error on the test set, whose inputs carry all-zero class channels (run eagerly).

        With ``class_channels`` the test inputs carry their own class's vector instead, as the
        training inputs do: the gap between the two errors measures how much the model relies
        on the channels.
        """
        self.model.eval()
        d = self.data
        batches = self._chunks(d.x_test, d.y_test, d.y_test if class_channels else None)
        wrong = error_count(lambda x: self._forward(self.model, x), batches)
        return int(wrong.item()) / len(d.y_test)

    @torch.no_grad()
    def diagnose(self) -> dict[str, float]:
        """The diagnosis on the first `n_diagnosis` images: the zero-channel test error with
        BatchNorm statistics re-estimated on zero-channel training inputs (NaN without running
        statistics), channel following on test images given the channel of class (y + 1) mod K,
        and the feature-variance ratio of training inputs with their own channels. One host
        sync for all three."""
        self.model.eval()
        d, n = self.data, self.n_diagnosis
        if n == 0:
            return dict.fromkeys(DIAGNOSIS, float("nan"))
        nan = torch.full((), float("nan"), dtype=torch.float64, device=d.y_test.device)
        x_train, y_train = d.x_train[:n], d.y_train[:n]
        shifted = shifted_classes(d.y_test[:n], d.num_classes)
        predicted = torch.cat([self._forward(self.model, x).argmax(dim=1) for x, _ in
                               self._chunks(d.x_test[:n], shifted, shifted)])
        features = torch.cat([self._forward(self.model.features, x).float() for x, _ in
                              self._chunks(x_train, y_train, y_train)])
        recalibrated_error = nan
        if has_running_stats(self.model):
            self._twin = recalibrated(
                self.model, (x for x, _ in self._chunks(x_train, y_train, None,
                                                        self.recalibration_batch)),
                forward=self._forward, into=self._twin)
            twin = self._twin
            wrong = error_count(lambda x: self._forward(twin, x),
                                self._chunks(d.x_test, d.y_test, None))
            recalibrated_error = wrong.to(torch.float64) / len(d.y_test)
        values = torch.stack([recalibrated_error, channel_following(predicted, shifted),
                              feature_variance_ratio(features, y_train, d.num_classes)])
        return dict(zip(DIAGNOSIS, values.tolist(), strict=True))
