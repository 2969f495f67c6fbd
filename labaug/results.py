"""The result contract: xarray Datasets in netCDF, provenance attributes, and aggregation."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

import labaug
from labaug.config import Config
from labaug.errors import CorruptFileError
from labaug.io import atomic_path

METHOD_DIM = "augmentation"
"""The dimension that holds the methods. Not ``method``: that is a keyword of ``Dataset.sel``,
so ``ds.sel(method="mixup")`` would silently select nothing; ``ds.sel(augmentation="mixup")``
works on every result file."""

PROVENANCE_KEYS = ("labaug_version", "git_commit", "config_sha256", "torch_version", "device",
                   "device_name", "precision", "created")


def git_commit() -> str:
    """The commit of the labaug checkout in use, or 'unknown' outside a git checkout."""
    here = Path(labaug.__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = out.stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                           capture_output=True, text=True, timeout=10)
    return commit + ("-dirty" if dirty.stdout.strip() else "")


def provenance(cfg: Config | Mapping[str, Any] | str, seed: int | None = None,
               device: str = "cpu", precision: str = "fp32") -> dict[str, Any]:
    """Attributes every result file carries (DESIGN.md): version, commit, config hash (``cfg``: a
    Config, the config slice the job depends on (`labaug.slices`; then the slice itself is
    stored too, as JSON in ``config``, for the captions), or its hash), the device it was
    computed on (cpu or cuda), that device's hardware name, the precision, ..."""
    from labaug.config import config_sha256
    from labaug.devices import device_name

    if isinstance(cfg, str):
        sha = cfg
    elif isinstance(cfg, Config):
        sha = cfg.sha256
    else:
        sha = config_sha256(cfg)
    attrs: dict[str, Any] = {
        "labaug_version": labaug.__version__,
        "git_commit": git_commit(),
        "config_sha256": sha,
        "torch_version": torch.__version__,
        "device": device,
        "device_name": device_name(device),
        "precision": precision,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    if seed is not None:
        attrs["seed"] = int(seed)
    if isinstance(cfg, Mapping) and not isinstance(cfg, Config):
        attrs["config"] = json.dumps(cfg, sort_keys=True, default=str)
    return attrs


def merge_configs(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Deep-merge config slices (later ones win on a conflict; slices of one run agree)."""
    out: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if isinstance(value, Mapping) and isinstance(out.get(key), dict):
                out[key] = merge_configs([out[key], value])
            else:
                out[key] = dict(value) if isinstance(value, Mapping) else value
    return out


def write_netcdf(ds: xr.Dataset, path: str | os.PathLike[str]) -> None:
    """Write a Dataset atomically (temporary name, then rename), verified: the temporary file is
    read back before the rename, so a result file that exists is readable."""
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4")
        back = read_netcdf(tmp)
        if set(back.data_vars) != set(ds.data_vars) or dict(back.sizes) != dict(ds.sizes):
            raise CorruptFileError(tmp, "read back with other variables or sizes than written")


def read_netcdf(path: str | os.PathLike[str]) -> xr.Dataset:
    """Load a result file fully into memory and close it; an unreadable file raises
    CorruptFileError naming it."""
    try:
        with xr.open_dataset(path, engine="netcdf4") as ds:
            return ds.load()
    except FileNotFoundError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError, IndexError) as err:
        raise CorruptFileError(path, f"{type(err).__name__}: {err}") from err


def methods_of(ds: xr.Dataset) -> list[str]:
    """The methods of a result file, in its order."""
    return [str(m) for m in ds[METHOD_DIM].values]


HP_VALUE_LONG_NAME = "the method's hyperparameter (weight decay lambda, smoothing a, alpha, ...)"


def _job_variables(dims: tuple[str, ...], shape: tuple[int, ...],
                   variables: Mapping[str, tuple[np.ndarray, str]]) -> dict[str, Any]:
    """Data variables of one job's Dataset, each reshaped to ``shape`` with its long_name."""
    return {
        name: (dims, np.asarray(vals, dtype=np.float64).reshape(shape), {"long_name": long_name})
        for name, (vals, long_name) in variables.items()
    }


def linear_job_dataset(
    method: str,
    seed: int,
    hp_values: np.ndarray,
    weights: np.ndarray,
    variables: Mapping[str, tuple[np.ndarray, str]],
    attrs: Mapping[str, Any],
) -> xr.Dataset:
    """One sweep's result, dims (augmentation=1, hp, seed=1); variables: name -> (values, name)."""
    n_hp = len(hp_values)
    data_vars = _job_variables((METHOD_DIM, "hp", "seed"), (1, n_hp, 1), variables)
    data_vars["weight"] = (
        (METHOD_DIM, "hp", "seed", "feature"), weights[None, :, None, :],
        {"long_name": "final weight vector w of sigma(w . x)"},
    )
    return xr.Dataset(
        data_vars,
        coords={
            METHOD_DIM: [method],
            "hp": np.arange(n_hp),
            "seed": [int(seed)],
            "feature": np.arange(weights.shape[-1]),
            "hp_value": ((METHOD_DIM, "hp"), np.asarray(hp_values, dtype=np.float64)[None, :],
                         {"long_name": HP_VALUE_LONG_NAME}),
        },
        attrs=dict(attrs),
    )


def resnet_job_dataset(
    method: str,
    seed: int,
    epochs: np.ndarray,
    variables: Mapping[str, tuple[np.ndarray, str]],
    attrs: Mapping[str, Any],
) -> xr.Dataset:
    """One ResNet run: dims (augmentation=1, seed=1, epoch); variables: name -> (values, name)."""
    data_vars = _job_variables((METHOD_DIM, "seed", "epoch"), (1, 1, len(epochs)), variables)
    return xr.Dataset(
        data_vars,
        coords={METHOD_DIM: [method], "seed": [int(seed)],
                "epoch": ("epoch", np.asarray(epochs, dtype=np.int64),
                          {"long_name": "training epoch (1-based; metrics at its end)"})},
        attrs=dict(attrs),
    )


def aggregate(datasets: Sequence[xr.Dataset]) -> xr.Dataset:
    """Combine per-job Datasets by coordinates (augmentation, seed, ...); drop the job's seed."""
    combined = xr.combine_by_coords(list(datasets), combine_attrs="drop_conflicts",
                                    join="outer", coords="different", compat="no_conflicts")
    assert isinstance(combined, xr.Dataset)
    order = [d for d in (METHOD_DIM, "hp", "seed", "epoch", "feature") if d in combined.dims]
    combined = combined.transpose(*order, *[d for d in combined.dims if d not in order])
    combined.attrs = {k: v for k, v in combined.attrs.items() if k != "seed"}
    # Drop the encodings inherited from the first per-job file: a method name stored there as
    # a 6-character array ("cutmix") would truncate every longer name on writing.
    for variable in combined.variables.values():
        variable.encoding = {}
    return combined


def aggregate_files(paths: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str],
                    methods: Sequence[str] | None = None) -> xr.Dataset:
    """Read per-job files, combine them, keep ``methods`` order, and write ``out`` atomically."""
    parts = [read_netcdf(p) for p in paths]
    first = parts[0].attrs
    combined = aggregate(parts)
    if methods is not None:
        combined = combined.sel({METHOD_DIM: list(methods)})
    combined.attrs.update({k: first[k] for k in PROVENANCE_KEYS if k in first})
    # The union of the jobs' config slices: what built this file (labaug.captions reads it).
    slices_ = [json.loads(p.attrs["config"]) for p in parts if "config" in p.attrs]
    if slices_:
        combined.attrs["config"] = json.dumps(merge_configs(slices_), sort_keys=True)
    combined.attrs["created"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    combined.attrs["seeds"] = np.asarray(combined["seed"].values, dtype=np.int64)
    write_netcdf(combined, out)
    return combined
