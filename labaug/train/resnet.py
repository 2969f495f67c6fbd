"""The class-channel trainer of Sec. 4.3: any registered model (`labaug.models`; ResNet-18 is
the paper's), class channels built on the device, a diagnosis every epoch, resumable.

The whole (standardized) dataset lives on the training device as one tensor; a batch is taken by
index and its class channels are concatenated there (`labaug.data.channels`). Every method is a
`labaug.augment` object applied to whole inputs (image and class channels) and one-hot targets,
and every method trains with one soft-target cross-entropy; a method's weight decay (only weight
decay's is nonzero) is Adam's coupled L2 term.

After each epoch the run measures the paper's test error (zero class channels, eval mode) and the
diagnosis of `labaug.train.evaluation` (recalibrated test error, channel following, feature-
variance ratio) on fixed subsets; the diagnosis never changes the run's state.

On CUDA the model runs channels_last unless the model says it has no use for it (the resident
training tensor is stored channels_last once, so batches taken from it need no conversion) under
autocast with fp32 weights: bf16 where the GPU computes in it natively, else fp16 with loss scaling
(`torch.amp.GradScaler`), or fp32 when asked (``resnet.precision``;
`labaug.devices.resolve_precision`); cuDNN autotuning is on and Adam is fused. An epoch syncs with
the host once, for its metrics. ``resnet.compile`` compiles the model for the full training batches
only (``dynamic=False``: one graph; a partial last batch and the evaluation run eagerly), so
nothing recompiles from epoch to epoch. On the CPU the model runs in fp32 and is bitwise
reproducible.

A checkpoint (model, optimizer, loss scaler, every random generator, metrics so far) is written
atomically every ``resnet.checkpoint_minutes`` minutes (0 = every epoch) and always after the last
epoch; a rerun resumes from it and, on the CPU, ends with the same numbers as an uninterrupted run.
A checkpoint written on CUDA resumes on the CPU, and one written on the CPU resumes on CUDA
(`load_optimizer_state`). Random draws come from generators seeded by (seed, purpose) and made on
the CPU, so the shuffling and augmentation draws are the same on every device (the same draw code
as the linear sweep, `labaug.train.linear.EpochDraws`); one host-to-device copy per epoch.

An unreadable checkpoint is moved aside (``.corrupt``) with a warning and the run starts afresh;
``<checkpoint>.lock`` (flock) keeps a second trainer off a checkpoint in use. Once the result is
written, the checkpoint shrinks to the run's final state (metrics, no weights): a forced rerun of
a finished run rebuilds its result from it in seconds.

Failure injection for tests (``LABAUG_INJECT_NAN``, `labaug.train.inject`): ``nan_epoch`` turns
the loss into NaN at the first step of that epoch, and the run fails with `NonFiniteLossError`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from labaug import augment, models
from labaug.config import Method, OptimConfig, ResNetConfig
from labaug.data.channels import ClassChannelData, with_class_channels, with_zero_channels
from labaug.devices import Precision, resolve_device, resolve_precision
from labaug.errors import CheckpointInUseError, quarantine
from labaug.fingerprint import RESUMABLE, WHERE, differences, resnet_fingerprint
from labaug.integrity import array_digest, seal, unseal
from labaug.io import atomic_path, try_lock
from labaug.losses import one_hot, soft_cross_entropy
from labaug.models.nets import ClassChannelNet
from labaug.rng import torch_rng
from labaug.train.evaluation import (
    channel_following,
    error_count,
    feature_variance_ratio,
    has_running_stats,
    recalibrated,
    shifted_classes,
)
from labaug.train.linear import EpochDraws, step_slice

log = logging.getLogger(__name__)

EVAL_BATCH = 1000


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


DIAGNOSIS = ("test_error_recalibrated", "channel_following", "feature_variance_ratio")
"""What `ResNetTrainer.diagnose` measures, beside the paper's test error."""
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


@dataclass(frozen=True)
class Segment:
    """A stretch of a run's epochs that trained on one device, precision and compilation."""

    first: int
    last: int
    device: str
    precision: str
    compile: bool


def checkpoint_path(output: str | os.PathLike[str], results_root: str = "results",
                    checkpoint_root: str = "checkpoints") -> Path:
    """{root}/results/resnet/.../seed{seed}.nc -> {root}/checkpoints/resnet/.../seed{seed}.pt:
    the ``results`` directory right above ``resnet`` becomes ``checkpoints`` (an output root
    may itself contain a directory named results). The workflow passes each run's checkpoint
    path itself; this is the default for other callers."""
    out = Path(output)
    parts = list(out.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == results_root and parts[i + 1] == "resnet":
            parts[i] = checkpoint_root
            return Path(*parts).with_suffix(".pt")
    return out.with_name(out.stem + ".ckpt.pt")


@contextlib.contextmanager
def checkpoint_lock(checkpoint: str | os.PathLike[str]) -> Iterator[None]:
    """Hold ``<checkpoint>.lock`` (fcntl.flock) so two trainers never share one checkpoint; a
    second trainer fails at once with CheckpointInUseError naming the holder's pid."""
    lock = Path(str(checkpoint) + ".lock")
    fd = try_lock(lock)
    if fd is None:
        holder = lock.read_text(errors="replace").strip() or "?"
        raise CheckpointInUseError(
            f"checkpoint {checkpoint} is in use by another trainer (pid {holder}, lock "
            f"{lock})", fix="wait for that trainer to finish (it writes the same result), "
            f"or stop it (kill {holder}), then rerun")
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)   # releases the lock


def save_checkpoint(ckpt: str | os.PathLike[str], payload: Mapping[str, Any]) -> None:
    """Write a checkpoint atomically, sealed with the checksum of its content
    (`labaug.integrity.seal`)."""
    with atomic_path(ckpt) as tmp:
        torch.save(seal(payload), tmp)


def read_checkpoint(ckpt: str | os.PathLike[str]) -> dict[str, Any]:
    """A checkpoint's content, after its checksum; any unreadable or altered file raises."""
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError("not a labaug checkpoint")
    body = unseal(state)
    if "fingerprint" not in body or "epoch" not in body:
        raise ValueError("not a labaug checkpoint")
    return body


def load_checkpoint(ckpt: Path, run: ResNetRun) -> dict[str, Any] | None:
    """The checkpoint's contents; one that cannot be read, or whose content differs from its
    checksum, is moved aside to ``.corrupt`` with a warning naming it, and None is returned (the
    run starts afresh)."""
    try:
        return read_checkpoint(ckpt)
    except FileNotFoundError:
        return None
    except Exception as err:  # noqa: BLE001 - any unreadable file is set aside, named
        moved = quarantine(ckpt)
        log.warning("%s: checkpoint %s is unreadable or altered (%s: %s); moved it to %s and "
                    "starting afresh", run, ckpt, type(err).__name__, err, moved)
        return None


def finalize_checkpoint(ckpt: str | os.PathLike[str]) -> None:
    """Replace a finished run's checkpoint by its small final state (metrics, fingerprint, no
    weights), so a forced rerun with the same fingerprint rebuilds the result in seconds
    instead of training again."""
    path = Path(ckpt)
    final = {k: v for k, v in read_checkpoint(path).items() if k != "trainer"}
    final["final"] = True
    save_checkpoint(path, final)
    read_checkpoint(path)   # verify after write


def load_optimizer_state(opt: torch.optim.Optimizer, saved: Mapping[str, Any]) -> None:
    """Load ``saved`` into ``opt``, keeping ``opt``'s own implementation (fused or not), so a
    state written on CUDA (fused Adam) resumes on the CPU and one written on the CPU on CUDA.

    ``Optimizer.load_state_dict`` takes the implementation flags, and the placement of Adam's
    step counts, from the saved state; here both follow ``opt``: a fused or capturable step is a
    float32 tensor on its parameter's device, any other step lives on the CPU. The moment
    estimates take their parameter's memory layout: fused Adam on CUDA refuses a contiguous
    ``exp_avg`` beside a channels_last weight (a CPU checkpoint resumed on a GPU).
    """
    keys = ("fused", "foreach", "capturable")
    flags = [{k: g[k] for k in keys if k in g} for g in opt.param_groups]
    opt.load_state_dict(dict(saved))
    for group, own in zip(opt.param_groups, flags, strict=True):
        group.update(own)
        on_device = bool(own.get("fused") or own.get("capturable"))
        for param in group["params"]:
            state = opt.state.get(param) or {}
            step = state.get("step")
            if isinstance(step, Tensor):
                state["step"] = (step.to(device=param.device, dtype=torch.float32) if on_device
                                 else step.to("cpu"))
            for key, value in state.items():
                if (key != "step" and isinstance(value, Tensor)
                        and value.shape == param.shape and value.stride() != param.stride()):
                    state[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)


AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def _autocast(device: torch.device, precision: Precision) -> contextlib.AbstractContextManager[Any]:
    """bf16 or fp16 autocast (fp32 weights); plain fp32 for fp32."""
    if precision in AUTOCAST_DTYPES:
        return torch.autocast(device_type=device.type, dtype=AUTOCAST_DTYPES[precision])
    return contextlib.nullcontext()


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
        self.device = torch.device(resolve_device(device) if device == "auto" else device)
        dev = self.device
        cuda = dev.type == "cuda"
        # The arithmetic: resnet.precision unless given; auto = bf16 / fp16 by GPU, fp32 on the
        # CPU (bitwise reproducible). Mixed precision on the CPU lets tests exercise that path.
        self.precision: Precision = resolve_precision(
            resnet.precision if precision is None else precision, dev.type)
        self.channels_last = self.spec.channels_last and (cuda or self.precision != "fp32")
        self.compiled = resnet.compile if compile_model is None else compile_model
        if cuda:
            torch.backends.cudnn.benchmark = True   # fixed shapes: autotune the convolutions
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        self.num_classes = data.num_classes
        # The resident tensors, in the model's memory format once (not per batch).
        self.x_train = torch.as_tensor(data.x_train, dtype=torch.float32, device=dev).contiguous(
            memory_format=fmt)
        self.y_train = torch.as_tensor(data.y_train, dtype=torch.int64, device=dev)
        self.x_test = torch.as_tensor(data.x_test, dtype=torch.float32, device=dev).contiguous(
            memory_format=fmt)
        self.y_test = torch.as_tensor(data.y_test, dtype=torch.int64, device=dev)
        self.vectors = torch.as_tensor(data.class_vectors, dtype=torch.float32,
                                       device=dev).contiguous(memory_format=fmt)
        self.n_train = len(data.y_train)
        # The fixed inputs of the per-epoch diagnosis: the first diagnosis_subset images.
        self.n_diagnosis = min(resnet.diagnosis_subset, self.n_train, len(data.y_test))
        self._twin: nn.Module | None = None     # the recalibrated copy, reused every epoch

        # The same initial model and data order for every method of a seed (paired comparison).
        shape = data.x_train.shape
        self.model: ClassChannelNet = self.spec.build(
            (data.in_channels, int(shape[2]), int(shape[3])), self.num_classes,
            resnet.width, resnet.mlp_hidden, torch_rng(run.seed, "resnet", "init"), dev)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        # Fused Adam on CUDA: one kernel per step, and loss scaling without a host sync.
        self.fused = cuda
        self.opt = torch.optim.Adam(self.model.parameters(), lr=optim.lr, betas=optim.betas,
                                    eps=optim.eps, weight_decay=self.aug.decay(self.value),
                                    fused=True if cuda else None)
        self.scaler = torch.amp.GradScaler(dev.type, enabled=self.precision == "fp16")
        # Compiled for the full training batches only: one static graph (dynamic=False); the
        # partial last batch and evaluation run the same module eagerly.
        self.train_forward: Callable[[Tensor], Tensor] = (
            torch.compile(self.model, dynamic=False) if self.compiled else self.model)
        self.order_rng = torch_rng(run.seed, "resnet", "order")
        shape = data.x_train.shape
        self.draws = EpochDraws(self.aug, run.seed, ("resnet", run.dataset),
                                np.array([self.value]), mix_per_batch,
                                (int(shape[2]), int(shape[3])))
        self.values = torch.tensor([self.value], dtype=torch.float32, device=dev)

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
            labels = self.y_train[idx]
            x = with_class_channels(self.x_train[idx], labels, self.vectors)
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
            with _autocast(self.device, self.precision):
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

    def _inputs(self, images: Tensor, channels: Tensor | None) -> Tensor:
        """Model inputs: ``images`` with the class vectors of ``channels`` (labels), or with
        zero channels (None), in the model's memory format."""
        x = (with_zero_channels(images) if channels is None
             else with_class_channels(images, channels, self.vectors))
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _chunks(self, images: Tensor, labels: Tensor, channels: Tensor | None,
                size: int = EVAL_BATCH) -> Iterator[tuple[Tensor, Tensor]]:
        """(inputs, labels) in chunks of ``size``; channels as in `_inputs`."""
        for start in range(0, len(labels), size):
            part = slice(start, start + size)
            yield (self._inputs(images[part], None if channels is None else channels[part]),
                   labels[part])

    def _forward(self, model: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
        """``model(x)`` under the run's autocast."""
        with _autocast(self.device, self.precision):
            return model(x)

    @torch.no_grad()
    def test_error(self, class_channels: bool = False) -> float:
        """Error on the test set, whose inputs carry all-zero class channels (run eagerly).

        With ``class_channels`` the test inputs carry their own class's vector instead, as the
        training inputs do: the gap between the two errors measures how much the model relies
        on the channels.
        """
        self.model.eval()
        batches = self._chunks(self.x_test, self.y_test,
                               self.y_test if class_channels else None)
        wrong = error_count(lambda x: self._forward(self.model, x), batches)
        return int(wrong.item()) / len(self.y_test)

    @torch.no_grad()
    def diagnose(self) -> dict[str, float]:
        """The per-epoch diagnosis (`labaug.train.evaluation`) on the first `n_diagnosis` images:
        the zero-channel test error with BatchNorm statistics re-estimated on zero-channel
        training inputs (NaN without running statistics), channel following on test images
        given the channel of class (y + 1) mod K, and the feature-variance ratio of training
        inputs with their own channels. The trained model and its state are untouched; one host
        sync for all three."""
        self.model.eval()
        n = self.n_diagnosis
        nan = torch.full((), float("nan"), dtype=torch.float64, device=self.device)
        if n == 0:
            return dict.fromkeys(DIAGNOSIS, float("nan"))
        x_train, y_train = self.x_train[:n], self.y_train[:n]
        shifted = shifted_classes(self.y_test[:n], self.num_classes)
        predicted = torch.cat([self._forward(self.model, x).argmax(dim=1) for x, _ in
                               self._chunks(self.x_test[:n], shifted, shifted)])
        features = torch.cat([self._forward(self.model.features, x).float() for x, _ in
                              self._chunks(x_train, y_train, y_train)])
        recalibrated_error = nan
        if has_running_stats(self.model):
            self._twin = recalibrated(
                self.model, (x for x, _ in self._chunks(x_train, y_train, None,
                                                        self.optim.batch_size)),
                forward=self._forward, into=self._twin)
            twin = self._twin
            wrong = error_count(lambda x: self._forward(twin, x),
                                self._chunks(self.x_test, self.y_test, None))
            recalibrated_error = wrong.to(torch.float64) / len(self.y_test)
        values = torch.stack([recalibrated_error, channel_following(predicted, shifted),
                              feature_variance_ratio(features, y_train, self.num_classes)])
        return dict(zip(DIAGNOSIS, values.tolist(), strict=True))


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


def finished_fingerprint(fingerprint: Mapping[str, Any], segments: Sequence[Segment]
                         ) -> dict[str, Any]:
    """The fingerprint a finished run records: the one asked for, except that a run whose
    epochs trained in several places (it resumed on another device) names them all, so it is
    never taken for a run that trained in one place."""
    out = dict(fingerprint)
    for key in WHERE:
        seen = list(dict.fromkeys(getattr(s, key) for s in segments))
        if len(seen) > 1:
            out[key] = "+".join(str(v) for v in seen)
    return out


def train_resnet(
    data: ClassChannelData, run: ResNetRun, optim: OptimConfig, resnet: ResNetConfig, *,
    epochs: int | None = None, mix_per_batch: bool = False, device: str = "cpu",
    checkpoint: str | os.PathLike[str] | None = None, nan_epoch: int | None = None,
    on_epoch: Callable[[int], None] | None = None, compile_model: bool | None = None,
    precision: str | None = None, trainer_out: list[ResNetTrainer] | None = None,
) -> ResNetHistory:
    """Train one ResNet-18 run for ``epochs`` (default optim.epochs), resuming from ``checkpoint``.

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
    here = (trainer.device.type, trainer.precision, trainer.compiled)
    metrics: dict[str, list[float]] = {name: [] for name in METRICS}
    segments: list[Segment] = []
    start = 0
    ckpt = Path(checkpoint) if checkpoint is not None else None
    # On the CPU: generator states must stay CPU tensors; load_state_dict moves the rest.
    state = load_checkpoint(ckpt, run) if ckpt is not None else None
    if state is not None:
        old = state.get("fingerprint")
        saved = [Segment(*s) for s in state.get("segments", [])]
        if "trainer" not in state:
            if old == finished_fingerprint(fingerprint, saved) and state["epoch"] == n_epochs:
                metrics = {k: list(v) for k, v in state["metrics"].items()}
                segments, start = saved, n_epochs
                log.info("%s: training already finished (%d epochs, the same fingerprint); "
                         "result rebuilt from the final state in %s, nothing retrained", run,
                         n_epochs, ckpt)
            else:
                log.warning("%s: checkpoint %s holds a finished run of other settings (%s); "
                            "training afresh", run, ckpt, "; ".join(
                                differences(old, fingerprint) or ["its epochs"]))
        else:
            changed = differences(old, fingerprint, ignore=RESUMABLE)
            if changed or state["epoch"] > n_epochs:
                log.warning("%s: checkpoint %s is of other settings (%s); training afresh",
                            run, ckpt, "; ".join(changed or [
                                f"it is past epoch {n_epochs} (epoch {state['epoch']})"]))
            else:
                trainer.load_state_dict(state["trainer"])
                metrics = {k: list(v) for k, v in state["metrics"].items()}
                segments, start = saved, int(state["epoch"])
                moved = differences(old, fingerprint, ignore=[k for k in fingerprint
                                                              if k not in WHERE])
                log.info("%s: resumed from %s after epoch %d%s", run, ckpt, start,
                         f" ({'; '.join(moved)}: the result records both)" if moved else "")

    every = 60.0 * resnet.checkpoint_minutes
    last_save = time.monotonic()
    began = time.perf_counter()
    for epoch in range(start + 1, n_epochs + 1):
        tic = time.perf_counter()
        train_loss, train_error = trainer.train_epoch(nan_at_start=epoch == nan_epoch)
        train_seconds = time.perf_counter() - tic
        if not math.isfinite(train_loss):
            raise NonFiniteLossError(
                f"non-finite training loss ({train_loss}) in ResNet run {run} at epoch {epoch}")
        toc = time.perf_counter()
        test_error = trainer.test_error()
        evaluated = time.perf_counter()
        measured = {"train_loss": train_loss, "train_error": train_error,
                    "test_error": test_error, **trainer.diagnose()}
        diagnosed = time.perf_counter()
        for name in METRICS:
            metrics[name].append(measured[name])
        if segments and (segments[-1].device, segments[-1].precision,
                         segments[-1].compile) == here and segments[-1].last == epoch - 1:
            segments[-1] = replace(segments[-1], last=epoch)
        else:
            segments.append(Segment(epoch, epoch, *here))
        due = epoch == n_epochs or every <= 0 or time.monotonic() - last_save >= every
        if ckpt is not None and due:
            save_checkpoint(ckpt, {
                "fingerprint": finished_fingerprint(fingerprint, segments), "epoch": epoch,
                "metrics": metrics, "trainer": trainer.state_dict(),
                "segments": [list(asdict(s).values()) for s in segments]})
            last_save = time.monotonic()
        seconds = time.perf_counter() - tic
        # Time left at the pace of this attempt's epochs so far.
        left = (time.perf_counter() - began) / (epoch - start) * (n_epochs - epoch)
        # The seconds of the paper's test evaluation and of the diagnosis, apart: the diagnosis
        # costs at most about 15% of an epoch (README "The class-channel diagnosis").
        log.info("%s epoch %d/%d: train loss %.4f, train error %.4f, test error %.4f, "
                 "recalibrated %.4f, channel following %.4f, feature variance ratio %.4f "
                 "(%.1f s, %.0f train img/s; test %.2f s, diagnosis %.2f s%s%s)", run, epoch,
                 n_epochs, train_loss, train_error, test_error,
                 measured["test_error_recalibrated"], measured["channel_following"],
                 measured["feature_variance_ratio"], seconds,
                 trainer.n_train / max(train_seconds, 1e-9), evaluated - toc,
                 diagnosed - evaluated,
                 ", checkpoint written" if ckpt is not None and due else "",
                 f"; about {duration(left)} left" if epoch < n_epochs else "")
        if on_epoch is not None:
            on_epoch(epoch)

    return ResNetHistory(epoch=np.arange(1, n_epochs + 1),
                         metrics={name: np.asarray(metrics[name], dtype=np.float64)
                                  for name in METRICS},
                         fingerprint=finished_fingerprint(fingerprint, segments),
                         segments=tuple(segments))
