"""Typed, frozen configuration built from the validated config dictionary."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

Method = Literal["weight_decay", "label_smoothing", "mixup"]
Variance = Literal["zero", "low"]
Device = Literal["cpu", "cuda"]

METHODS: tuple[Method, ...] = ("weight_decay", "label_smoothing", "mixup")
VARIANCES: tuple[Variance, ...] = ("zero", "low")
IMAGE_DATASETS: tuple[str, ...] = ("cifar10", "cifar100", "fmnist")
LINEAR_DATA: tuple[str, ...] = ("synthetic", *IMAGE_DATASETS)


@dataclass(frozen=True)
class OptimConfig:
    """Adam settings shared by every experiment."""

    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    batch_size: int = 500
    epochs: int = 100


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

    d: int = 5
    gamma: float = 0.5
    u_low: float = 1.0
    u_high: float = 5.0
    n_train: int = 50_000
    n_test: int = 10_000


@dataclass(frozen=True)
class TheoryConfig:
    """How the expectations are evaluated and how tightly the minimizers are solved."""

    n_samples: int = 1_000_000
    seed: int = 0
    quadrature_nodes: int = 32
    mixup_quadrature_nodes: int = 12
    beta_nodes: int = 32
    tol: float = 1e-10
    max_grad_norm: float = 1e-8


@dataclass(frozen=True)
class ResNetConfig:
    """Multi-class ResNet-18 with identifying class channels (Sec. 4.3)."""

    datasets: tuple[str, ...] = ("cifar10", "cifar100")
    width: int = 64
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    mixup_alpha: float = 1.0
    channel_sigma: float | None = None
    train_subset: int | None = None
    test_subset: int | None = None
    epochs: int | None = None        # None = optim.epochs
    batch_size: int | None = None    # None = optim.batch_size

    def optim_for(self, optim: OptimConfig) -> OptimConfig:
        """The shared optimizer settings with this section's epochs / batch size, if set."""
        return replace(optim, epochs=optim.epochs if self.epochs is None else self.epochs,
                       batch_size=optim.batch_size if self.batch_size is None
                       else self.batch_size)


@dataclass(frozen=True)
class Config:
    """The whole run configuration; nothing else in labaug reads the raw dict."""

    device: Device
    seeds: tuple[int, ...]
    optim: OptimConfig
    methods: tuple[Method, ...]
    grids: Mapping[str, GridConfig]
    mixup_per_batch: bool
    variances: tuple[Variance, ...]
    synthetic: SyntheticConfig
    low_noise: float
    image_datasets: tuple[str, ...]
    image_gamma: float
    data_sources: Mapping[str, str | None]
    allow_download: bool
    resnet: ResNetConfig
    theory: TheoryConfig
    sha256: str
    # {dataset: {file name: hex digest}} replacing the official checksums (a mirror, or tests).
    data_checksums: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def grid(self, method: str) -> np.ndarray:
        """The hyperparameter values swept for ``method``."""
        return self.grids[method].values()


def config_sha256(raw: Mapping[str, Any]) -> str:
    """A stable hash of a config dict (keys sorted, JSON-encoded)."""
    text = json.dumps(raw, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def from_dict(raw: Mapping[str, Any]) -> Config:
    """Build a Config from a dict that already passed the JSON schema."""
    optim = raw.get("optim", {})
    betas = optim.get("betas", (0.9, 0.999))
    synthetic = raw.get("synthetic", {})
    resnet = dict(raw.get("resnet", {}))
    if "datasets" in resnet:
        resnet["datasets"] = tuple(resnet["datasets"])
    return Config(
        device=raw.get("device", "cpu"),
        seeds=tuple(int(s) for s in raw["seeds"]),
        optim=OptimConfig(
            lr=float(optim.get("lr", 1e-3)),
            betas=(float(betas[0]), float(betas[1])),
            eps=float(optim.get("eps", 1e-8)),
            batch_size=int(optim.get("batch_size", 500)),
            epochs=int(optim.get("epochs", 100)),
        ),
        methods=tuple(raw.get("methods", METHODS)),
        grids={
            name: GridConfig(float(g["low"]), float(g["high"]), int(g["size"]))
            for name, g in raw["grids"].items()
        },
        mixup_per_batch=bool(raw.get("mixup_per_batch", False)),
        variances=tuple(raw.get("variances", VARIANCES)),
        synthetic=SyntheticConfig(**synthetic),
        low_noise=float(raw.get("low_noise", 0.1)),
        image_datasets=tuple(raw.get("image_datasets", ())),
        image_gamma=float(raw.get("image", {}).get("gamma", 0.5)),
        data_sources=dict(raw.get("data_sources", {})),
        allow_download=bool(raw.get("allow_download", True)),
        resnet=ResNetConfig(**resnet),
        theory=TheoryConfig(**dict(raw.get("theory") or {})),
        sha256=config_sha256(raw),
        data_checksums={k: dict(v) for k, v in (raw.get("data_checksums") or {}).items()},
    )
