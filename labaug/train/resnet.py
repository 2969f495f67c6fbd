"""The class-channel trainer of Sec. 4.3: any registered model (`labaug.models`; ResNet-18 is
the paper's), class channels built on the device, a diagnosis every epoch, resumable.

The whole (standardized) dataset lives on the training device as one tensor; a batch is taken by
index and its class channels are concatenated there (`labaug.data.channels`). Every method is a
`labaug.augment` object applied to whole inputs (image and class channels) and one-hot targets,
and every method trains with one soft-target cross-entropy; a method's weight decay (only weight
decay's is nonzero) is Adam's coupled L2 term. Random draws come from generators seeded by
(seed, purpose) and made on the CPU (`labaug.augment.draws.EpochDraws`, shared with the linear
sweep), so the shuffling and augmentation draws are the same on every device; one
host-to-device copy per epoch, and one host sync per epoch, for its metrics.

This module is the loop. The rest lives beside it, one concern per module:

* `labaug.train.placement`: device, precision (autocast, loss scaling), memory format, the data
  resident on the device;
* `labaug.train.evaluation`: the paper's test error and the per-epoch diagnosis;
* `labaug.train.checkpoints`: writing, locking, resuming from and shrinking checkpoints
  (every ``resnet.checkpoint_minutes`` minutes, 0 = every epoch, and after the last epoch; on
  the CPU a resumed run ends with the same numbers as an uninterrupted one);
* `labaug.train.inject`: failure injection for tests (``LABAUG_INJECT_NAN``: a NaN loss at the
  first step of an epoch, and the run fails with `NonFiniteLossError`).

``resnet.compile`` compiles the model for the full training batches only (``dynamic=False``: one
graph; a partial last batch and the evaluation run eagerly), so nothing recompiles from epoch
to epoch; Adam is fused on CUDA.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from labaug import augment, models
from labaug.augment.draws import EpochDraws, step_slice
from labaug.config import Method, OptimConfig, ResNetConfig
from labaug.data.channels import ClassChannelData, with_class_channels
from labaug.fingerprint import resnet_fingerprint
from labaug.integrity import array_digest
from labaug.losses import one_hot, soft_cross_entropy
from labaug.models.nets import ClassChannelNet
from labaug.rng import torch_rng
from labaug.train.checkpoints import (
    Segment,
    finished_fingerprint,
    load_optimizer_state,
    resume,
    save_checkpoint,
)
from labaug.train.evaluation import DIAGNOSIS, Evaluator
from labaug.train.placement import Placement, Resident, placement

log = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
    """A training loss became NaN or inf; the message names the run and the epoch."""


@dataclass(frozen=True)
class ResNetRun:
    """One training job: a dataset, a model, a label-augmentation method at one of its values
    (``grid``: the index into ``resnet.hp.<method>``) and a seed."""

    dataset: str
    method: Method
    seed: int
    model: str = "resnet18"
    grid: int = 0

    def __str__(self) -> str:
        """dataset=... model=... method=... [grid=...] seed=..., as used in logs and errors."""
        grid = f" grid={self.grid}" if self.grid else ""
        return (f"dataset={self.dataset} model={self.model} method={self.method}{grid} "
                f"seed={self.seed}")


METRICS = ("train_loss", "train_error", "test_error", *DIAGNOSIS)
"""What a run measures after each epoch (`labaug.results.RESNET_VARIABLES` says what each is)."""


@dataclass(frozen=True)
class ResNetHistory:
    """Per-epoch metrics of one run (`METRICS`); epoch is 1-based. ``fingerprint`` identifies
    the run (`labaug.fingerprint`); ``segments`` says where each stretch of epochs trained."""

    epoch: np.ndarray
    metrics: Mapping[str, np.ndarray]
    fingerprint: Mapping[str, Any] = field(default_factory=dict)
    segments: tuple[Segment, ...] = ()

    @property
    def trained_on(self) -> str:
        """Where the run trained, in words: 'cpu fp32 (epochs 1-20)', one part per segment."""
        return "; ".join(f"{s.device} {s.precision}{' compiled' if s.compile else ''} "
                         f"(epochs {s.first}-{s.last})" for s in self.segments)

    @property
    def test_error(self) -> np.ndarray:
        """The paper's test error (zero class channels, eval mode) per epoch."""
        return self.metrics["test_error"]

    @property
    def train_loss(self) -> np.ndarray:
        """The mean training loss per epoch."""
        return self.metrics["train_loss"]

    @property
    def train_error(self) -> np.ndarray:
        """The training error per epoch."""
        return self.metrics["train_error"]


class ResNetTrainer:
    """Model, optimizer, device-resident data and generators of one run; one call per epoch."""

    def __init__(
        self, data: ClassChannelData, run: ResNetRun, optim: OptimConfig, resnet: ResNetConfig,
        *, mix_per_batch: bool = False, device: str = "cpu", compile_model: bool | None = None,
        precision: str | None = None,
    ) -> None:
        self.run, self.optim, self.resnet = run, optim, resnet
        self.mix_per_batch = mix_per_batch
        self.aug = augment.get(run.method)
        self.value = resnet.value(run.method, run.grid)
        self.spec = models.get(run.model)
        self.where: Placement = placement(
            device, resnet.precision if precision is None else precision,
            resnet.compile if compile_model is None else compile_model, self.spec.channels_last)
        dev = self.device
        self.data = Resident.of(data, self.where)
        self.num_classes = data.num_classes
        self.n_train = len(data.y_train)

        # The same initial model and data order for every method of a seed (paired comparison).
        shape = data.x_train.shape
        self.model: ClassChannelNet = self.spec.build(
            (data.in_channels, int(shape[2]), int(shape[3])), self.num_classes,
            resnet.width, resnet.mlp_hidden, torch_rng(run.seed, "resnet", "init"), dev)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        # Fused Adam on CUDA: one kernel per step, and loss scaling without a host sync.
        self.opt = torch.optim.Adam(self.model.parameters(), lr=optim.lr, betas=optim.betas,
                                    eps=optim.eps, weight_decay=self.aug.decay(self.value),
                                    fused=True if dev.type == "cuda" else None)
        self.scaler = torch.amp.GradScaler(dev.type, enabled=self.precision == "fp16")
        # Compiled for the full training batches only: one static graph (dynamic=False); the
        # partial last batch and evaluation run the same module eagerly.
        self.train_forward: Callable[[Tensor], Tensor] = (
            torch.compile(self.model, dynamic=False) if self.compiled else self.model)
        self.order_rng = torch_rng(run.seed, "resnet", "order")
        self.draws = EpochDraws(self.aug, run.seed, ("resnet", run.dataset),
                                np.array([self.value]), mix_per_batch,
                                (int(shape[2]), int(shape[3])))
        self.values = torch.tensor([self.value], dtype=torch.float32, device=dev)
        # The fixed inputs of the per-epoch diagnosis: the first diagnosis_subset images.
        self.evaluation = Evaluator(
            self.model, self.data, self.where,
            min(resnet.diagnosis_subset, self.n_train, len(data.y_test)), optim.batch_size)

    @property
    def device(self) -> torch.device:
        """The device the run trains on."""
        return self.where.device

    @property
    def precision(self) -> str:
        """The run's arithmetic: fp32, bf16 or fp16 (`labaug.train.placement`)."""
        return self.where.precision

    @property
    def channels_last(self) -> bool:
        """Whether the model and its inputs are channels_last."""
        return self.where.channels_last

    @property
    def compiled(self) -> bool:
        """Whether the full training batches run through torch.compile."""
        return self.where.compiled

    @property
    def n_diagnosis(self) -> int:
        """How many training and test images the per-epoch diagnosis uses."""
        return self.evaluation.n_diagnosis

    def test_error(self, class_channels: bool = False) -> float:
        """The paper's test error (`Evaluator.test_error`)."""
        return self.evaluation.test_error(class_channels)

    def diagnose(self) -> dict[str, float]:
        """The per-epoch diagnosis (`Evaluator.diagnose`); the run's state is untouched."""
        return self.evaluation.diagnose()

    # -- state ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs to continue exactly: weights, Adam, generators."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "order_rng": self.order_rng.get_state(),
            "augment_rngs": [rng.bit_generator.state for rng in self.draws.rngs],
            "partner_rng": (None if self.draws.partner_rng is None
                            else self.draws.partner_rng.bit_generator.state),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what `state_dict` saved."""
        self.model.load_state_dict(state["model"])
        load_optimizer_state(self.opt, state["optimizer"])
        if self.scaler.is_enabled() and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.order_rng.set_state(state["order_rng"])
        for rng, saved in zip(self.draws.rngs, state["augment_rngs"], strict=True):
            rng.bit_generator.state = saved
        if self.draws.partner_rng is not None:
            self.draws.partner_rng.bit_generator.state = state["partner_rng"]

    # -- batches ----------------------------------------------------------------------------
    def _batches(self) -> Iterator[tuple[Tensor, Tensor]]:
        """One epoch of augmented training batches (inputs, soft targets), built on the device."""
        n, bs, k = self.n_train, self.optim.batch_size, self.num_classes
        steps = math.ceil(n / bs)
        order = torch.randperm(n, generator=self.order_rng).to(self.device, non_blocking=True)
        draws, partners = self.draws.epoch(n, bs, self.device)
        for step in range(steps):
            idx = order[step * bs:(step + 1) * bs]
            b = len(idx)
            if b < 2:   # BatchNorm cannot train on a single example
                break
            labels = self.data.y_train[idx]
            x = with_class_channels(self.data.x_train[idx], labels, self.data.vectors)
            partner = None if partners is None else partners[step]
            xa, ta = self.aug.apply(x.unsqueeze(1), one_hot(labels, k).unsqueeze(1), self.values,
                                    step_slice(draws, step, b), partner)
            x, t = xa[:, 0], ta[:, 0]
            if self.channels_last:   # a no-op: the batch inherits the resident tensor's format
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, t

    def train_epoch(self, nan_at_start: bool = False) -> tuple[float, float]:
        """Train one epoch; returns (mean training loss, training error) over its examples.

        Metrics accumulate on the device; the epoch's one host sync reads both at its end.
        """
        self.model.train()
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        err_sum = torch.zeros((), dtype=torch.int64, device=self.device)
        seen = 0
        full = self.optim.batch_size
        for step, (x, t) in enumerate(self._batches()):
            b = len(t)
            forward = self.train_forward if b == full else self.model
            with self.where.autocast():
                logits = forward(x)
            loss = soft_cross_entropy(logits.float(), t)
            if nan_at_start and step == 0:
                loss = loss * float("nan")
            self.opt.zero_grad(set_to_none=True)
            torch.autograd.backward(self.scaler.scale(loss))
            self.scaler.step(self.opt)
            self.scaler.update()
            seen += b
            loss_sum += loss.detach().to(torch.float64) * b
            # Training error: predicted class vs the dominant class of the (augmented) target.
            err_sum += (logits.detach().argmax(dim=1) != t.argmax(dim=1)).sum()
        total_loss, total_err = torch.stack([loss_sum, err_sum.to(torch.float64)]).tolist()
        return total_loss / seen, total_err / seen


def duration(seconds: float) -> str:
    """A time span as a person reads it: '42 s', '17 min', '3 h 05 min', '2 d 07 h'."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{round(s / 60)} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 86400} d {s % 86400 // 3600:02d} h"


def run_fingerprint(trainer: ResNetTrainer, data: ClassChannelData,
                    epochs: int) -> dict[str, Any]:
    """The run's fingerprint (`labaug.fingerprint.resnet_fingerprint`) for ``epochs`` epochs,
    with the digest of the very arrays it trains and tests on."""
    settings: dict[str, Any] = {k: getattr(trainer.resnet, k) for k in trainer.spec.settings}
    return resnet_fingerprint(
        dataset=trainer.run.dataset, model=trainer.run.model, model_settings=settings,
        method=trainer.run.method, hp_value=trainer.value, seed=trainer.run.seed,
        optim=replace(trainer.optim, epochs=epochs),
        data_digest=array_digest(data.x_train, data.y_train, data.x_test, data.y_test,
                                 data.class_vectors, data.classes),
        n_train=len(data.y_train), n_test=len(data.y_test), sigma=data.sigma,
        diagnosis_subset=trainer.resnet.diagnosis_subset, mix_per_batch=trainer.mix_per_batch,
        device=trainer.device.type, precision=trainer.precision,
        compile_model=trainer.compiled, metrics=METRICS)


def train_resnet(
    data: ClassChannelData, run: ResNetRun, optim: OptimConfig, resnet: ResNetConfig, *,
    epochs: int | None = None, mix_per_batch: bool = False, device: str = "cpu",
    checkpoint: str | os.PathLike[str] | None = None, nan_epoch: int | None = None,
    on_epoch: Callable[[int], None] | None = None, compile_model: bool | None = None,
    precision: str | None = None, trainer_out: list[ResNetTrainer] | None = None,
) -> ResNetHistory:
    """Train one run for ``epochs`` (default optim.epochs), resuming from ``checkpoint``.

    ``on_epoch(epoch)`` is called after each epoch (and its checkpoint, when one is due: every
    ``resnet.checkpoint_minutes``, and after the last epoch); tests use it to stop a run part-way.
    ``nan_epoch`` injects a NaN loss at that 1-based epoch; ``precision`` and ``compile_model``
    (None = resnet.precision / resnet.compile) choose the arithmetic and compilation;
    ``trainer_out``, when given, receives the trainer (for provenance and tests).
    """
    n_epochs = optim.epochs if epochs is None else int(epochs)
    trainer = ResNetTrainer(data, run, optim, resnet, mix_per_batch=mix_per_batch,
                            device=device, compile_model=compile_model, precision=precision)
    if trainer_out is not None:
        trainer_out.append(trainer)
    fingerprint = run_fingerprint(trainer, data, n_epochs)
    here = Segment(0, 0, trainer.device.type, trainer.precision, trainer.compiled)
    ckpt = Path(checkpoint) if checkpoint is not None else None
    start = resume(ckpt, run, fingerprint, n_epochs, METRICS, trainer.load_state_dict)
    metrics, segments = start.metrics, start.segments
    every = 60.0 * resnet.checkpoint_minutes
    last_save, began = time.monotonic(), time.perf_counter()
    for epoch in range(start.epoch + 1, n_epochs + 1):
        tic = time.perf_counter()
        train_loss, train_error = trainer.train_epoch(nan_at_start=epoch == nan_epoch)
        if not math.isfinite(train_loss):
            raise NonFiniteLossError(
                f"non-finite training loss ({train_loss}) in ResNet run {run} at epoch {epoch}")
        times = [tic, time.perf_counter()]
        measured = {"train_loss": train_loss, "train_error": train_error,
                    "test_error": trainer.test_error()}
        times.append(time.perf_counter())
        measured.update(trainer.diagnose())
        times.append(time.perf_counter())
        for name in METRICS:
            metrics[name].append(measured[name])
        segments = extended(segments, here, epoch)
        due = ckpt is not None and (epoch == n_epochs or every <= 0
                                    or time.monotonic() - last_save >= every)
        if ckpt is not None and due:
            save_checkpoint(ckpt, {
                "fingerprint": finished_fingerprint(fingerprint, segments), "epoch": epoch,
                "metrics": metrics, "trainer": trainer.state_dict(),
                "segments": [list(asdict(s).values()) for s in segments]})
            last_save = time.monotonic()
        # Time left at the pace of this attempt's epochs so far.
        left = (time.perf_counter() - began) / (epoch - start.epoch) * (n_epochs - epoch)
        log_epoch(run, epoch, n_epochs, measured, times, trainer.n_train, due, left)
        if on_epoch is not None:
            on_epoch(epoch)

    return ResNetHistory(epoch=np.arange(1, n_epochs + 1),
                         metrics={name: np.asarray(metrics[name], dtype=np.float64)
                                  for name in METRICS},
                         fingerprint=finished_fingerprint(fingerprint, segments),
                         segments=tuple(segments))


def extended(segments: list[Segment], here: Segment, epoch: int) -> list[Segment]:
    """``segments`` with ``epoch`` added: the last segment grows when the epoch follows it in
    the same place (``here``: device, precision, compilation), else a new one starts."""
    last = segments[-1] if segments else None
    if last is not None and last.last == epoch - 1 and (
            last.device, last.precision, last.compile) == (
            here.device, here.precision, here.compile):
        return [*segments[:-1], replace(last, last=epoch)]
    return [*segments, replace(here, first=epoch, last=epoch)]


def log_epoch(run: ResNetRun, epoch: int, epochs: int, measured: Mapping[str, float],
              times: list[float], n_train: int, saved: bool, left: float) -> None:
    """One log line per epoch: the metrics, the seconds of the epoch, of the paper's test
    evaluation and of the diagnosis apart (``times``: start, trained, tested, diagnosed), the
    training throughput, whether a checkpoint was written, and the time left."""
    tic, trained, tested, diagnosed = times
    log.info("%s epoch %d/%d: train loss %.4f, train error %.4f, test error %.4f, "
             "recalibrated %.4f, channel following %.4f, feature variance ratio %.4f "
             "(%.1f s, %.0f train img/s; test %.2f s, diagnosis %.2f s%s%s)", run, epoch,
             epochs, measured["train_loss"], measured["train_error"], measured["test_error"],
             measured["test_error_recalibrated"], measured["channel_following"],
             measured["feature_variance_ratio"], time.perf_counter() - tic,
             n_train / max(trained - tic, 1e-9), tested - trained, diagnosed - tested,
             ", checkpoint written" if saved else "",
             f"; about {duration(left)} left" if epoch < epochs else "")
