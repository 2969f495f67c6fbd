"""Checkpoints of class-channel runs: where they live, how they are written, read, locked,
resumed from and finally shrunk.

A checkpoint (model, optimizer, loss scaler, every random generator, metrics so far, the run's
fingerprint and where each stretch of epochs trained) is written atomically and sealed with the
checksum of its content (`labaug.integrity`). A rerun resumes from it (`resume`) when its
fingerprint matches the run asked for, except in where it trains (device, precision,
compilation: `labaug.fingerprint.WHERE`); a checkpoint written on CUDA resumes on the CPU and one
written on the CPU on CUDA (`load_optimizer_state`). An unreadable or altered checkpoint is moved
aside (``.corrupt``) with a warning and the run starts afresh; ``<checkpoint>.lock`` (flock) keeps
a second trainer off a checkpoint in use. Once the result is written, the checkpoint shrinks to
the run's final state (metrics, no weights; `finalize_checkpoint`): a forced rerun of a finished
run rebuilds its result from it in seconds.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from labaug.errors import CheckpointInUseError, quarantine
from labaug.fingerprint import RESUMABLE, WHERE, differences
from labaug.integrity import seal, unseal
from labaug.io import atomic_path, try_lock

if TYPE_CHECKING:
    from labaug.train.resnet import ResNetRun

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Segment:
    """A stretch of a run's epochs that trained on one device, precision and compilation."""

    first: int
    last: int
    device: str
    precision: str
    compile: bool


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


@dataclass
class Resumed:
    """What a run continues from: its metrics so far, its segments and its last epoch (0 and
    empty for a fresh start)."""

    metrics: dict[str, list[float]]
    segments: list[Segment]
    epoch: int


def resume(ckpt: Path | None, run: ResNetRun, fingerprint: Mapping[str, Any], epochs: int,
           metric_names: Sequence[str], load_trainer: Callable[[Mapping[str, Any]], None]
           ) -> Resumed:
    """Where a run of ``epochs`` epochs with ``fingerprint`` starts, given its checkpoint: afresh
    (none, unreadable, or of other settings: a warning names what differs), at its end (a
    finished run with the same fingerprint: nothing to train), or after the checkpoint's epoch
    (``load_trainer`` receives the saved trainer state)."""
    fresh = Resumed({name: [] for name in metric_names}, [], 0)
    state = load_checkpoint(ckpt, run) if ckpt is not None else None
    if state is None:
        return fresh
    old = state.get("fingerprint")
    saved = [Segment(*s) for s in state.get("segments", [])]
    metrics = {k: list(v) for k, v in state["metrics"].items()}
    if "trainer" not in state:
        if old == finished_fingerprint(fingerprint, saved) and state["epoch"] == epochs:
            log.info("%s: training already finished (%d epochs, the same fingerprint); "
                     "result rebuilt from the final state in %s, nothing retrained", run,
                     epochs, ckpt)
            return Resumed(metrics, saved, epochs)
        log.warning("%s: checkpoint %s holds a finished run of other settings (%s); "
                    "training afresh", run, ckpt,
                    "; ".join(differences(old, fingerprint) or ["its epochs"]))
        return fresh
    changed = differences(old, fingerprint, ignore=RESUMABLE)
    if changed or state["epoch"] > epochs:
        log.warning("%s: checkpoint %s is of other settings (%s); training afresh", run, ckpt,
                    "; ".join(changed or [f"it is past epoch {epochs} (epoch {state['epoch']})"]))
        return fresh
    load_trainer(state["trainer"])
    start = int(state["epoch"])
    moved = differences(old, fingerprint, ignore=[k for k in fingerprint if k not in WHERE])
    log.info("%s: resumed from %s after epoch %d%s", run, ckpt, start,
             f" ({'; '.join(moved)}: the result records both)" if moved else "")
    return Resumed(metrics, saved, start)
