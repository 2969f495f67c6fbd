"""Typed, frozen configuration built from the validated config dictionary.

Every default lives in ``config.yaml``; these dataclasses have none, so a missing key is an
error here rather than a silently different value. `defaults` builds the shipped config (tests
and benchmarks start from it and `dataclasses.replace` what they change).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

Method = str
"""A registered label-augmentation name (`labaug.augment.names`)."""
Variance = Literal["zero", "low"]
Device = Literal["cpu", "cuda"]
DeviceSetting = Literal["auto", "cpu", "cuda"]
PrecisionSetting = Literal["auto", "bf16", "fp16", "fp32"]

VARIANCES: tuple[Variance, ...] = ("zero", "low")
DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "config.yaml"


@dataclass(frozen=True)
class OptimConfig:
    """Adam settings shared by every experiment."""

    lr: float
    betas: tuple[float, float]
    eps: float
    batch_size: int
    epochs: int


@dataclass(frozen=True)
class GridConfig:
    """An evenly spaced hyperparameter grid."""

    low: float
    high: float
    size: int

    def values(self) -> np.ndarray:
        """The grid's values as float64."""
        return np.linspace(self.low, self.high, self.size)


@dataclass(frozen=True)
class SyntheticConfig:
    """Definition 4.1: a constant low-variance block and a uniform high-variance block."""

    d: int
    gamma: float
    u_low: float
    u_high: float
    n_train: int
    n_test: int


@dataclass(frozen=True)
class TheoryConfig:
    """How the expectations are evaluated and how tightly the minimizers are solved."""

    n_samples: int
    seed: int
    quadrature_nodes: int
    mixup_quadrature_nodes: int
    beta_nodes: int
    tol: float
    max_grad_norm: float


@dataclass(frozen=True)
class LinearConfig:
    """Where the linear sweeps train (`labaug.devices`)."""

    device: Device


@dataclass(frozen=True)
class ResNetConfig:
    """Multi-class ResNet-18 with identifying class channels (Sec. 4.3), and how it runs."""

    datasets: tuple[str, ...]
    models: tuple[str, ...]          # registered model names (labaug.models), in plotting order
    width: int                       # ResNet-18 base width
    mlp_hidden: tuple[int, ...]      # MLP hidden widths
    hp: Mapping[str, tuple[float, ...]]  # each method's hyperparameter values (lambda, a, ...)
    channel_sigma: float | None
    train_subset: int | None
    test_subset: int | None
    diagnosis_subset: int            # images of the per-epoch diagnosis (labaug.train.evaluation)
    epochs: int | None               # None = optim.epochs
    batch_size: int | None           # None = optim.batch_size
    device: DeviceSetting            # auto = cuda where the DAG is built on a GPU machine
    precision: PrecisionSetting      # auto = bf16 / fp16 by GPU, fp32 on the CPU
    compile: bool                    # torch.compile the model's training steps
    runs_per_gpu: int                # GPU jobs sharing one GPU on a workstation
    checkpoint_minutes: float        # minutes between checkpoints; 0 = every epoch

    def values(self, method: str) -> tuple[float, ...]:
        """The hyperparameter values of ``method``'s runs, one run (grid point) each; a method
        without a hyperparameter (ERM) has the one value 0."""
        return hp_values(self.hp, method)

    def value(self, method: str, grid: int) -> float:
        """The value of ``method``'s ``grid``-th run: the grid-th of its values, or its one
        value (a run's own config holds only that run's value, whatever its grid index)."""
        values = self.values(method)
        if len(values) == 1:
            return values[0]
        if not 0 <= grid < len(values):
            raise IndexError(f"resnet.hp.{method} has {len(values)} values; no run {grid}")
        return values[grid]


@dataclass(frozen=True)
class Config:
    """The whole run configuration; nothing else in labaug reads the raw dict."""

    seeds: tuple[int, ...]
    optim: OptimConfig
    methods: tuple[Method, ...]
    grids: Mapping[str, GridConfig]
    mix_per_batch: bool
    variances: tuple[Variance, ...]
    synthetic: SyntheticConfig
    low_noise: float
    image_datasets: tuple[str, ...]
    image_gamma: float
    image_pairs: Mapping[str, tuple[int, int]]   # {dataset: (class for y = -1, class for y = +1)}
    data_sources: Mapping[str, str | None]
    allow_download: bool
    linear: LinearConfig
    resnet: ResNetConfig
    theory: TheoryConfig
    sha256: str
    # {dataset: {file name: hex digest}} replacing the official checksums (a mirror, or tests).
    data_checksums: Mapping[str, Mapping[str, str]]
    # Where results/, figures/, logs/ and checkpoints/ go ("." = the working directory).
    output_root: str

    def grid(self, method: str) -> np.ndarray:
        """The hyperparameter values swept for ``method``."""
        return self.grids[method].values()


def config_sha256(raw: Mapping[str, Any]) -> str:
    """A stable hash of a config dict (keys sorted, JSON-encoded)."""
    text = json.dumps(raw, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def optim_config(raw: Mapping[str, Any]) -> OptimConfig:
    """The ``optim`` section as an OptimConfig."""
    return OptimConfig(lr=float(raw["lr"]), betas=(float(raw["betas"][0]), float(raw["betas"][1])),
                       eps=float(raw["eps"]), batch_size=int(raw["batch_size"]),
                       epochs=int(raw["epochs"]))


def grid_config(raw: Mapping[str, Any]) -> GridConfig:
    """One ``grids.<method>`` entry as a GridConfig."""
    return GridConfig(float(raw["low"]), float(raw["high"]), int(raw["size"]))


def synthetic_config(raw: Mapping[str, Any]) -> SyntheticConfig:
    """The ``synthetic`` section as a SyntheticConfig."""
    return SyntheticConfig(**raw)


def theory_config(raw: Mapping[str, Any]) -> TheoryConfig:
    """The ``theory`` section as a TheoryConfig."""
    return TheoryConfig(**raw)


def hp_values(hp: Mapping[str, Any], method: str) -> tuple[float, ...]:
    """``resnet.hp.<method>`` as a tuple of values: a number is one value, a list several; a
    method with no entry (ERM: no hyperparameter) has the one value 0."""
    value = hp.get(method)
    if value is None:
        return (0.0,)
    if isinstance(value, list | tuple):
        return tuple(float(v) for v in value)
    return (float(value),)


def resnet_config(raw: Mapping[str, Any]) -> ResNetConfig:
    """The ``resnet`` section (every key present) as a ResNetConfig."""
    return ResNetConfig(**{**raw, "datasets": tuple(raw["datasets"]),
                           "models": tuple(raw["models"]),
                           "mlp_hidden": tuple(int(h) for h in raw["mlp_hidden"]),
                           "hp": {k: hp_values(raw["hp"], k) for k in raw["hp"]},
                           "diagnosis_subset": int(raw["diagnosis_subset"]),
                           "compile": bool(raw["compile"]),
                           "runs_per_gpu": int(raw["runs_per_gpu"]),
                           "checkpoint_minutes": float(raw["checkpoint_minutes"])})


def from_dict(raw: Mapping[str, Any]) -> Config:
    """Build a Config from a dict that already passed the JSON schema (every key present)."""
    return Config(
        seeds=tuple(int(s) for s in raw["seeds"]),
        optim=optim_config(raw["optim"]),
        methods=tuple(raw["methods"]),
        grids={name: grid_config(g) for name, g in raw["grids"].items()},
        mix_per_batch=bool(raw["mix_per_batch"]),
        variances=tuple(raw["variances"]),
        synthetic=synthetic_config(raw["synthetic"]),
        low_noise=float(raw["low_noise"]),
        image_datasets=tuple(raw["image_datasets"]),
        image_gamma=float(raw["image"]["gamma"]),
        image_pairs={k: (int(v[0]), int(v[1])) for k, v in raw["image"]["pairs"].items()},
        data_sources=dict(raw["data_sources"]),
        allow_download=bool(raw["allow_download"]),
        linear=LinearConfig(device=raw["linear"]["device"]),
        resnet=resnet_config(raw["resnet"]),
        theory=theory_config(raw["theory"]),
        sha256=config_sha256(raw),
        data_checksums={k: dict(v) for k, v in (raw.get("data_checksums") or {}).items()},
        output_root=str(raw["output_root"]),
    )


@cache
def default_dict() -> dict[str, Any]:
    """The shipped config.yaml as a dict (the workflow's defaults)."""
    with open(DEFAULT_CONFIG) as fh:
        raw: dict[str, Any] = yaml.safe_load(fh)
    return raw


def defaults() -> Config:
    """The shipped config.yaml as a Config."""
    return from_dict(default_dict())
