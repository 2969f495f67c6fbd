"""The part of the configuration each workflow job depends on.

Each rule passes its job's slice as ``params`` (Snakemake's rerun trigger: a changed slice reruns
the job, and only that job), and the job reads the slice, not the whole config. A slice keeps
the config's nesting and holds only the keys the job's result depends on; the settings that
change how a job runs but not what it computes (``resnet.checkpoint_minutes``,
``resnet.runs_per_gpu``, ``allow_download``) are not in it. Slicing a slice gives the same slice,
so every job entry point in `labaug.jobs` accepts the whole config as well.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from labaug import augment


def canonical(value: Any) -> Any:
    """``value`` with every mapping's keys sorted (so a slice's repr, which Snakemake stores and
    compares, does not depend on the order in which config files named the keys)."""
    if isinstance(value, Mapping):
        return {k: canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    return value


def pick(config: Mapping[str, Any], paths: Iterable[str]) -> dict[str, Any]:
    """The nested subset of ``config`` at dotted ``paths`` (``grids.mixup``, ``image.gamma``),
    keys sorted (`canonical`)."""
    out: dict[str, Any] = {}
    for path in paths:
        *parents, leaf = path.split(".")
        src: Any = config
        dst = out
        for key in parents:
            src = src[key]
            dst = dst.setdefault(key, {})
        dst[leaf] = src[leaf]
    result: dict[str, Any] = canonical(out)
    return result


def has_draws(method: str) -> bool:
    """True when ``method`` draws random mixing weights (so ``mix_per_batch`` matters to it)."""
    cls = type(augment.get(method))
    return cls.draw is not augment.Augmentation.draw


def linear_slice(config: Mapping[str, Any], data: str, variance: str,
                 method: str) -> dict[str, Any]:
    """What one linear sweep job (data, variance, method; any seed) depends on."""
    paths = ["optim", f"grids.{method}", "linear.device"]
    paths += ["synthetic"] if data == "synthetic" else ["image.gamma"]
    if variance == "low":
        paths.append("low_noise")
    if has_draws(method):
        paths.append("mix_per_batch")
    out = pick(config, paths)
    if data != "synthetic":
        out["image"]["pairs"] = {data: list(pair_of(config, data))}
    return out


DEFAULT_PAIR = (0, 1)
"""The class pair of an image dataset whose config names none: its first two classes."""


def pair_of(part: Mapping[str, Any], data: str) -> tuple[int, int]:
    """The class pair (``image.pairs.<data>``, default `DEFAULT_PAIR`) of an image dataset,
    from the whole config or a slice holding it."""
    pair = ((part.get("image") or {}).get("pairs") or {}).get(data, DEFAULT_PAIR)
    return int(pair[0]), int(pair[1])


def task_slice(config: Mapping[str, Any], variance: str) -> dict[str, Any]:
    """What one standardized binary image task (dataset and pair: its file name) depends on:
    the identifying value and its noise for the low variant (no seed: each sweep job draws its
    seed's values, so adding a seed changes no task)."""
    paths = ["image.gamma"] + (["low_noise"] if variance == "low" else [])
    return pick(config, paths)


def resnet_values(config: Mapping[str, Any], method: str) -> list[float]:
    """The hyperparameter values of ``method``'s ResNet runs, one run (grid point) each
    (`labaug.config.hp_values`: a number is one value; ERM has the one value 0)."""
    from labaug.config import hp_values

    return list(hp_values(config["resnet"]["hp"], method))


def resnet_slice(config: Mapping[str, Any], method: str, model: str | None = None,
                 grid: int = 0) -> dict[str, Any]:
    """What one ResNet run of ``model`` (default: the first of ``resnet.models``) and ``method``
    at its ``grid``-th value (any dataset and seed) depends on, its device aside: the model's
    own settings (`labaug.models.Model.settings`) and the run's one value, so that editing
    another model's settings or another value reruns nothing here."""
    from labaug import models

    resnet = config["resnet"]
    name = str(resnet["models"][0]) if model is None else model
    paths = ["optim.lr", "optim.betas", "optim.eps"]
    paths += [f"resnet.{key}" for key in (*models.get(name).settings, "channel_sigma",
                                          "train_subset", "test_subset", "diagnosis_subset",
                                          "epochs", "batch_size", "precision", "compile")]
    if resnet["epochs"] is None:
        paths.append("optim.epochs")
    if resnet["batch_size"] is None:
        paths.append("optim.batch_size")
    if has_draws(method):
        paths.append("mix_per_batch")
    out = pick(config, paths)
    out["resnet"]["models"] = [name]
    if augment.get(method).has_hp:
        value = resnet["hp"][method]
        # A list holds every grid point's value; a number is the one value (in a slice: the
        # run's own, whatever its grid index), so slicing a slice gives the same slice.
        out["resnet"]["hp"] = {method: float(value[grid]) if isinstance(value, list | tuple)
                               else float(value)}
    return out


def pairs_slice(config: Mapping[str, Any]) -> dict[str, Any]:
    """What the class-pair difficulty measure depends on: the optimizer and the first seed."""
    return {**pick(config, ["optim"]), "seeds": [config["seeds"][0]]}


def example_slice(config: Mapping[str, Any]) -> dict[str, Any]:
    """What the Fig. 5 class-channel example depends on: the first seed and the data subset."""
    out = pick(config, ["resnet.channel_sigma", "resnet.train_subset", "resnet.test_subset"])
    return {**out, "seeds": [config["seeds"][0]]}


def theory_slice(config: Mapping[str, Any], variance: str) -> dict[str, Any]:
    """What the exact minimizers of one synthetic variant depend on."""
    methods = augment.for_experiment(list(config["methods"]), "synthetic")
    paths = ["synthetic", "theory", *(f"grids.{m}" for m in methods)]
    if variance == "low":
        paths.append("low_noise")
    return {**pick(config, paths), "methods": methods}


def methods_slice(config: Mapping[str, Any], experiment: augment.Experiment) -> dict[str, Any]:
    """What an aggregation depends on beyond its inputs: the order of the experiment's methods
    (and, for the class-channel runs, of the models)."""
    out: dict[str, Any] = {"methods": augment.for_experiment(list(config["methods"]), experiment)}
    if experiment == "class_channels":
        out["resnet"] = {"models": list(config["resnet"]["models"])}
    return out


def fetch_slice(config: Mapping[str, Any], dataset: str) -> dict[str, Any]:
    """What data/raw/{dataset}.npz depends on: a built-in dataset's source directory and
    checksums; a user's dataset entry (``datasets.<name>``: format, path, classes, ...)."""
    entry = (config.get("datasets") or {}).get(dataset)
    if entry is not None:
        return {"datasets": {dataset: canonical(entry)}}
    out: dict[str, Any] = {"data_sources": {dataset: config["data_sources"].get(dataset)}}
    checksums = (config.get("data_checksums") or {}).get(dataset)
    if checksums is not None:
        out["data_checksums"] = {dataset: canonical(checksums)}
    return out
