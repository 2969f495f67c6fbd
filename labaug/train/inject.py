"""Failure injection for testing failure handling: ``LABAUG_INJECT_NAN``.

The environment variable holds comma-separated ``dataset:method:seed:epoch`` entries, parsed
strictly (a malformed entry is an error naming the variable); the matching class-channel runs
(every model and value of that method) turn their loss into NaN at the first step of that
(1-based) epoch and so fail with `labaug.train.resnet.NonFiniteLossError`. The workflow checks
the variable before any job (`check_inject_nan`): an entry that matches no configured run stops
the DAG. Plain Python: the process that builds the DAG imports it without torch.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from labaug import augment

NAN_ENV = "LABAUG_INJECT_NAN"


class Run(Protocol):
    """What a run must have for `injected_nan_epoch` (`labaug.train.resnet.ResNetRun`)."""

    @property
    def dataset(self) -> str:
        """Its dataset."""

    @property
    def method(self) -> str:
        """Its method."""

    @property
    def seed(self) -> int:
        """Its seed."""


@dataclass(frozen=True)
class NanInjection:
    """One ``LABAUG_INJECT_NAN`` entry: this run turns its loss into NaN at this epoch."""

    dataset: str
    method: str
    seed: int
    epoch: int


NAN_FORMAT = "comma-separated dataset:method:seed:epoch entries, e.g. cifar10:mixup:0:2"


def parse_inject_nan(spec: str) -> list[NanInjection]:
    """Parse ``LABAUG_INJECT_NAN`` strictly; a malformed entry raises ValueError naming it."""
    out = []
    for entry in filter(None, (e.strip() for e in spec.split(","))):
        fields = [f.strip() for f in entry.split(":")]
        problem = ""
        if len(fields) != 4:
            problem = f"has {len(fields)} field{'s' if len(fields) != 1 else ''}, not 4"
        elif not fields[0]:
            problem = "the dataset is empty"
        elif fields[1] not in augment.names():
            problem = f"method {fields[1]!r} is not one of {', '.join(augment.names())}"
        elif not fields[2].isdigit():
            problem = f"seed {fields[2]!r} is not a whole number"
        elif not fields[3].isdigit() or int(fields[3]) < 1:
            problem = f"epoch {fields[3]!r} is not a whole number >= 1"
        if problem:
            raise ValueError(f"{NAN_ENV} entry {entry!r}: {problem}; {NAN_ENV} holds {NAN_FORMAT}")
        out.append(NanInjection(fields[0], fields[1], int(fields[2]), int(fields[3])))
    return out


def unmatched_injections(entries: list[NanInjection], datasets: list[str], methods: list[str],
                         seeds: list[int], epochs: int) -> list[str]:
    """The ``LABAUG_INJECT_NAN`` entries that match no configured ResNet run, each saying why."""
    problems = []
    for e in entries:
        name = f"{e.dataset}:{e.method}:{e.seed}:{e.epoch}"
        if e.dataset not in datasets:
            problems.append(f"{name}: dataset {e.dataset} is not in resnet.datasets "
                            f"({', '.join(datasets) or 'empty'})")
        elif e.method not in methods:
            problems.append(f"{name}: method {e.method} has no ResNet run (configured: "
                            f"{', '.join(methods)})")
        elif e.seed not in seeds:
            problems.append(f"{name}: seed {e.seed} is not in seeds ({', '.join(map(str, seeds))})")
        elif e.epoch > epochs:
            problems.append(f"{name}: epoch {e.epoch} is past the run's last epoch ({epochs})")
    return problems


def check_inject_nan(config: Mapping[str, Any], env: Mapping[str, str] | None = None) -> None:
    """Raise ValueError, naming ``LABAUG_INJECT_NAN``, when an entry of it is malformed or
    matches no ResNet run of ``config`` (the workflow calls it before any job)."""
    spec = (os.environ if env is None else env).get(NAN_ENV, "")
    if not spec.strip():
        return
    resnet = config["resnet"]
    problems = unmatched_injections(
        parse_inject_nan(spec), list(resnet["datasets"]),
        augment.for_experiment(list(config["methods"]), "class_channels"),
        [int(s) for s in config["seeds"]], int(resnet["epochs"] or config["optim"]["epochs"]))
    if problems:
        raise ValueError(f"{NAN_ENV} has entries that match no configured ResNet run:\n  - "
                         + "\n  - ".join(problems))


def injected_nan_epoch(run: Run, env: Mapping[str, str] | None = None) -> int | None:
    """The epoch at which ``LABAUG_INJECT_NAN`` asks this run to produce a NaN loss, if any."""
    spec = (os.environ if env is None else env).get(NAN_ENV, "")
    for e in parse_inject_nan(spec):
        if (e.dataset, e.method, e.seed) == (run.dataset, run.method, run.seed):
            return e.epoch
    return None
