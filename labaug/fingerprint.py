"""What identifies a run: every setting that determines its numbers, computed in one place.

A class-channel run's fingerprint (`resnet_fingerprint`) holds its dataset and a digest of the
very arrays it trains and tests on, its model and the model's own settings, its method and
value, seed, optimizer, epochs, batch size, diagnosis subset, and where and how it computes
(device kind, precision, compilation); a linear sweep's seed (`linear_fingerprint`) likewise.
Both are stored in the run's checkpoint (or, for a sweep, its cached result) and in its result
file. A finished run is reused only when its fingerprint equals the one asked for; otherwise it
is trained again and the log names every setting that differs (`differences`).

Settings that change how a job runs but no number it computes stay out: the checkpoint
interval (``resnet.checkpoint_minutes``), ``resnet.runs_per_gpu``, ``allow_download``, the
device setting ``auto`` as such (only the device it resolves to counts).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from labaug.config import OptimConfig
from labaug.integrity import content_digest

Fingerprint = dict[str, Any]

WHERE = ("device", "precision", "compile")
"""The keys that say where and how a run computed: a run interrupted on one device may resume
on another (`labaug.train.resnet`), and its result then says so."""
RESUMABLE = (*WHERE, "epochs")
"""What may differ between an interrupted run's checkpoint and the run that resumes it (more
epochs than before are asked, or another device)."""


def _optim(optim: OptimConfig) -> dict[str, Any]:
    """The optimizer's settings but the epochs (a key of their own), numbers as numbers of one
    type each."""
    return {"lr": float(optim.lr), "betas": [float(b) for b in optim.betas],
            "eps": float(optim.eps), "batch_size": int(optim.batch_size)}


def resnet_fingerprint(*, dataset: str, model: str, model_settings: Mapping[str, Any],
                       method: str, hp_value: float, seed: int, optim: OptimConfig,
                       data_digest: str, n_train: int, n_test: int, sigma: float,
                       diagnosis_subset: int, mix_per_batch: bool, device: str,
                       precision: str, compile_model: bool,
                       metrics: Sequence[str]) -> Fingerprint:
    """The fingerprint of one class-channel run (``optim.epochs``: the epochs asked for)."""
    return {
        "family": "class_channels", "dataset": dataset, "data_digest": data_digest,
        "n_train": int(n_train), "n_test": int(n_test), "class_channel_sigma": float(sigma),
        "model": model, "model_settings": {k: _plain(v) for k, v in model_settings.items()},
        "method": method, "hp_value": float(hp_value), "seed": int(seed),
        "optim": _optim(optim), "epochs": int(optim.epochs),
        "mix_per_batch": bool(mix_per_batch),
        "diagnosis_subset": int(diagnosis_subset), "metrics": list(metrics),
        "device": device, "precision": precision, "compile": bool(compile_model),
    }


def linear_fingerprint(*, data: str, variance: str, method: str, values: Sequence[float],
                       seed: int, optim: OptimConfig, mix_per_batch: bool, device: str,
                       data_digest: str) -> Fingerprint:
    """The fingerprint of one seed of a linear sweep (every value of its grid)."""
    return {
        "family": "linear", "data": data, "variance": variance, "data_digest": data_digest,
        "method": method, "values": [float(v) for v in values], "seed": int(seed),
        "optim": _optim(optim), "epochs": int(optim.epochs),
        "mix_per_batch": bool(mix_per_batch), "device": device,
    }


def _plain(value: Any) -> Any:
    """A setting as plain JSON-like data (tuples as lists)."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def digest(fingerprint: Mapping[str, Any]) -> str:
    """The sha256 of a fingerprint."""
    return content_digest(fingerprint)


def differences(old: Mapping[str, Any] | None, new: Mapping[str, Any],
                ignore: Sequence[str] = ()) -> list[str]:
    """What differs between two fingerprints, one 'key: old -> new' each (nested keys dotted;
    a digest shortened), leaving out ``ignore``d top-level keys."""
    if old is None:
        return ["no fingerprint (written by an older labaug)"]
    out: list[str] = []

    def walk(a: Any, b: Any, key: str) -> None:
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            for k in sorted(set(a) | set(b), key=str):
                walk(a.get(k, "(absent)"), b.get(k, "(absent)"), f"{key}.{k}" if key else str(k))
        elif a != b:
            out.append(f"{key}: {_short(a)} -> {_short(b)}")

    walk({k: v for k, v in old.items() if k not in ignore},
         {k: v for k, v in new.items() if k not in ignore}, "")
    return out


def _short(value: Any) -> str:
    """A value for a log line (a 64-hex digest cut to 12 characters)."""
    text = str(value)
    return text[:12] + "..." if len(text) == 64 and all(c in "0123456789abcdef" for c in text) \
        else text

