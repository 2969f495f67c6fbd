"""The result contract: xarray Datasets in netCDF, provenance attributes, and aggregation."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

import labaug
from labaug.config import Config
from labaug.errors import CorruptFileError, LabaugError
from labaug.io import atomic_path

METHOD_DIM = "augmentation"
"""The dimension that holds the methods. Not ``method``: that is a keyword of ``Dataset.sel``,
so ``ds.sel(method="mixup")`` would silently select nothing; ``ds.sel(augmentation="mixup")``
works on every result file."""

GRID_DIM = "grid"
"""The index into a method's hyperparameter values; ``hp_value(augmentation, grid)`` holds them."""
MODEL_DIM = "model"
"""The class-channel model (`labaug.models`): ``ds.sel(model="resnet18_gn")``."""

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


def torch_version() -> str:
    """``torch.__version__``, read from torch's version file where the job has not imported
    torch (aggregating, drawing and summarizing never train; importing torch costs them seconds
    of CPU each)."""
    if "torch" in sys.modules:
        return str(sys.modules["torch"].__version__)
    spec = importlib.util.find_spec("torch")
    if spec is not None and spec.origin is not None:
        text = (Path(spec.origin).parent / "version.py").read_text()
        found = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", text, flags=re.M)
        if found:
            return found.group(1)
    import torch

    return str(torch.__version__)


def provenance(cfg: Config | Mapping[str, Any] | str, seed: int | None = None,
               device: str = "cpu", precision: str = "fp32") -> dict[str, Any]:
    """Attributes every result file carries (docs/reading-results.md): version, commit, config
    hash (``cfg``: a Config, the config slice the job depends on (`labaug.slices`; then the slice
    itself is stored too, as JSON in ``config``, for the captions), or its hash), the device it was
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
        "torch_version": torch_version(),
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
    """Write a Dataset atomically (temporary name, then rename), verified and checksummed: the
    temporary file is read back, the digest of what was read (`labaug.integrity`) is added to
    it as the attribute ``labaug_sha256``, and only then is it renamed into place; so a result
    file that exists is readable, and any later change to its content is detected."""
    import netCDF4

    from labaug.integrity import DIGEST_ATTR, dataset_digest

    clean = ds.copy()
    clean.attrs = {k: v for k, v in ds.attrs.items() if k != DIGEST_ATTR}
    with atomic_path(path) as tmp:
        clean.to_netcdf(tmp, engine="netcdf4")
        back = read_netcdf(tmp)
        if set(back.data_vars) != set(ds.data_vars) or dict(back.sizes) != dict(ds.sizes):
            raise CorruptFileError(tmp, "read back with other variables or sizes than written")
        with netCDF4.Dataset(tmp, "a") as nc:
            nc.setncattr(DIGEST_ATTR, dataset_digest(back))


def read_netcdf(path: str | os.PathLike[str]) -> xr.Dataset:
    """Load a result file fully into memory and close it, in today's layout (`upgraded`). A file
    that cannot be read, for any reason, or whose content differs from its checksum raises
    CorruptFileError naming it (`labaug.jobs.logged_job` moves it aside to be rebuilt)."""
    from labaug.integrity import check_dataset

    try:
        with xr.open_dataset(path, engine="netcdf4") as ds:
            loaded = ds.load()
        check_dataset(loaded)
    except FileNotFoundError:
        raise
    except Exception as err:  # noqa: BLE001 - netCDF/HDF5 fail in many types; all mean unreadable
        raise CorruptFileError(path, f"{type(err).__name__}: {err}") from err
    return upgraded(loaded, path)


class OutdatedResultError(LabaugError):
    """A result file written by an older labaug that cannot be read in today's layout."""


# How older labaug versions named a class-channel model in a result's attributes.
_OLD_MODEL_TITLES = (("ResNet-18", "resnet18"), ("ReLU MLP", "mlp"))


def upgraded(ds: xr.Dataset, path: str | os.PathLike[str] = "") -> xr.Dataset:
    """A result of an older layout in today's: a linear sweep's ``hp`` dimension is ``grid``;
    a class-channel result without ``model`` and ``grid`` gets both, from its attributes (its
    model; its hyperparameter values from ``hp_value`` or the stored config). A file whose
    model or values cannot be told raises OutdatedResultError naming what to rerun."""
    if "hp" in ds.dims and GRID_DIM not in ds.dims:
        ds = ds.rename({"hp": GRID_DIM})
    if "epoch" not in ds.dims or METHOD_DIM not in ds.dims or MODEL_DIM in ds.dims:
        return ds
    fix = (f"rerun the class-channel runs of this file: snakemake {path} --forcerun "
           "train_resnet (with the config that made it)")
    title = str(ds.attrs.get("model", ""))
    model = next((name for prefix, name in _OLD_MODEL_TITLES if title.startswith(prefix)), None)
    if model is None:
        raise OutdatedResultError(f"{path}: an older class-channel result whose model "
                                  f"({title or 'not recorded'}) cannot be told", fix=fix)
    methods = methods_of(ds)
    if "hp_value" in ds.attrs and len(methods) == 1:
        values = [float(ds.attrs["hp_value"])]
    else:
        from labaug.config import hp_values

        try:
            hp = json.loads(str(ds.attrs["config"]))["resnet"]["hp"]
        except (KeyError, ValueError) as err:
            raise OutdatedResultError(f"{path}: an older class-channel result that does not "
                                      "record its methods' values", fix=fix) from err
        values = [hp_values(hp, m)[0] for m in methods]
    attrs = {k: v for k, v in ds.attrs.items() if k != "model"}
    out = ds.expand_dims({MODEL_DIM: [model], GRID_DIM: [0]}).transpose(
        MODEL_DIM, METHOD_DIM, GRID_DIM, ...)
    out = out.assign_coords(hp_value=((METHOD_DIM, GRID_DIM), np.array(values)[:, None],
                                      {"long_name": HP_VALUE_LONG_NAME}))
    out.attrs = {**attrs, "model_description": title}
    return out


def methods_of(ds: xr.Dataset) -> list[str]:
    """The methods of a result file, in its order."""
    return [str(m) for m in ds[METHOD_DIM].values]


def models_of(ds: xr.Dataset) -> list[str]:
    """The models of a class-channel result file, in its order."""
    return [str(m) for m in ds[MODEL_DIM].values]


def model_descriptions(ds: xr.Dataset) -> list[str]:
    """Each model of a class-channel result in words with its size (``ResNet-18, width 64``),
    from the config its runs recorded."""
    from labaug import models

    try:
        r = json.loads(str(ds.attrs["config"]))["resnet"]
    except (KeyError, ValueError):
        r = {}
    width, hidden = int(r.get("width", ds.attrs.get("width", 0))), r.get("mlp_hidden", [])
    return [models.describe_model(name, width, hidden) if name in models.names() else name
            for name in models_of(ds)]


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
    """One sweep's result, dims (augmentation=1, grid, seed=1); variables: name -> (values,
    long_name)."""
    n_hp = len(hp_values)
    data_vars = _job_variables((METHOD_DIM, GRID_DIM, "seed"), (1, n_hp, 1), variables)
    data_vars["weight"] = (
        (METHOD_DIM, GRID_DIM, "seed", "feature"), weights[None, :, None, :],
        {"long_name": "final weight vector w of sigma(w . x)"},
    )
    return xr.Dataset(
        data_vars,
        coords={
            METHOD_DIM: [method],
            GRID_DIM: np.arange(n_hp),
            "seed": [int(seed)],
            "feature": np.arange(weights.shape[-1]),
            "hp_value": ((METHOD_DIM, GRID_DIM), np.asarray(hp_values, dtype=np.float64)[None, :],
                         {"long_name": HP_VALUE_LONG_NAME}),
        },
        attrs=dict(attrs),
    )


RESNET_VARIABLES = {
    "test_error": "test error (fraction misclassified; test inputs carry zero class channels; "
                  "the model in eval mode: the paper's protocol)",
    "train_loss": "mean training loss over the epoch under the method's own objective "
                  "(soft-target cross-entropy), without the weight-decay term",
    "train_error": "training error over the epoch's batches: predicted class differs from the "
                   "dominant class of the (augmented) target",
    "test_error_recalibrated": "test error as test_error, after every BatchNorm layer's running "
                               "statistics are re-estimated on zero-channel training inputs "
                               "(the first resnet.diagnosis_subset; a copy of the model); NaN "
                               "for a model without running statistics",
    "channel_following": "share of test images (the first resnet.diagnosis_subset), each given "
                         "the class channel of class (y + 1) mod K, that the model assigns to "
                         "that class: 1 = the channel decides, about 1/K or less = the image "
                         "decides",
    "feature_variance_ratio": "within-class variance of the penultimate features over their "
                              "total variance (traces), on the first resnet.diagnosis_subset "
                              "training inputs with their class channels: 0 = the features "
                              "depend on the class only",
}
"""The variables of a class-channel result and what each is (their long_name)."""


def resnet_job_dataset(
    model: str,
    method: str,
    grid: int,
    hp_value: float,
    seed: int,
    epochs: np.ndarray,
    metrics: Mapping[str, np.ndarray],
    attrs: Mapping[str, Any],
) -> xr.Dataset:
    """One class-channel run: dims (model=1, augmentation=1, grid=1, seed=1, epoch); one
    variable per entry of `RESNET_VARIABLES`, from ``metrics``."""
    dims = (MODEL_DIM, METHOD_DIM, GRID_DIM, "seed", "epoch")
    data_vars = _job_variables(dims, (1, 1, 1, 1, len(epochs)),
                               {name: (metrics[name], long_name)
                                for name, long_name in RESNET_VARIABLES.items()})
    return xr.Dataset(
        data_vars,
        coords={MODEL_DIM: [model], METHOD_DIM: [method], GRID_DIM: [int(grid)],
                "seed": [int(seed)],
                "epoch": ("epoch", np.asarray(epochs, dtype=np.int64),
                          {"long_name": "training epoch (1-based; metrics at its end)"}),
                "hp_value": ((METHOD_DIM, GRID_DIM), [[float(hp_value)]],
                             {"long_name": HP_VALUE_LONG_NAME})},
        attrs=dict(attrs),
    )


DIM_ORDER = (MODEL_DIM, METHOD_DIM, GRID_DIM, "seed", "epoch", "feature")


def aggregate(datasets: Sequence[xr.Dataset]) -> xr.Dataset:
    """Combine per-job Datasets by their coordinates (model, augmentation, grid, seed, ...),
    NaN where a method has fewer values than another; drop the job's seed attribute."""
    combined = xr.merge(list(datasets), compat="no_conflicts", join="outer",
                        combine_attrs="drop_conflicts")
    order = [d for d in DIM_ORDER if d in combined.dims]
    combined = combined.transpose(*order, *[d for d in combined.dims if d not in order])
    combined.attrs = {k: v for k, v in combined.attrs.items() if k != "seed"}
    # Drop the encodings inherited from the first per-job file: a method name stored there as
    # a 6-character array ("cutmix") would truncate every longer name on writing.
    for variable in combined.variables.values():
        variable.encoding = {}
    return combined


def aggregate_files(paths: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str],
                    methods: Sequence[str] | None = None,
                    models: Sequence[str] | None = None) -> xr.Dataset:
    """Read per-job files, combine them, keep ``methods`` (and ``models``) order, and write
    ``out`` atomically."""
    parts = [read_netcdf(p) for p in paths]
    first = parts[0].attrs
    combined = aggregate(parts)
    if methods is not None:
        combined = combined.sel({METHOD_DIM: list(methods)})
    if models is not None and MODEL_DIM in combined.dims:
        combined = combined.sel({MODEL_DIM: list(models)})
    combined.attrs.update({k: first[k] for k in PROVENANCE_KEYS if k in first})
    # The union of the jobs' config slices: what built this file (labaug.captions reads it).
    slices_ = [json.loads(p.attrs["config"]) for p in parts if "config" in p.attrs]
    if slices_:
        combined.attrs["config"] = json.dumps(merge_configs(slices_), sort_keys=True)
    combined.attrs["created"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    combined.attrs["seeds"] = np.asarray(combined["seed"].values, dtype=np.int64)
    write_netcdf(combined, out)
    return combined
