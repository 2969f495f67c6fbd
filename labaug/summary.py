"""The run's result tables in Markdown, computed from the aggregated result files only.

`write_summary` writes ``results/summary.md``: for every experiment the workflow ran, the numbers
that the docs' result pages show (mean +/- std over seeds), so that those tables are pasted
from a file the workflow made rather than copied by hand. Every table names the files and the
provenance (config hash, commit) it came from.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import xarray as xr

from labaug import augment, models
from labaug.io import atomic_path
from labaug.results import (
    GRID_DIM,
    METHOD_DIM,
    MODEL_DIM,
    methods_of,
    model_descriptions,
    models_of,
    read_netcdf,
)

PathLike = str | os.PathLike[str]


def mean_std(values: np.ndarray, digits: int = 3) -> str:
    """'mean +/- std' over the last axis (NaN-aware); one value gives just the mean."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0 or np.all(np.isnan(values)):
        return "-"
    mean = float(np.nanmean(values))
    if np.sum(~np.isnan(values)) < 2:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} +/- {float(np.nanstd(values)):.{digits}f}"


def grid_points(n: int) -> list[int]:
    """The grid indices a table shows: 0 (ERM), the first nonzero, ~1/4, ~1/2 and the top."""
    return sorted({0, min(1, n - 1), round((n - 1) / 4), round((n - 1) / 2), n - 1})


def _provenance(ds: xr.Dataset) -> str:
    """The short provenance line of a result file."""
    seeds = ds["seed"].values.tolist() if "seed" in ds.coords else []
    commit = str(ds.attrs.get("git_commit", "?"))[:12]
    config = str(ds.attrs.get("config_sha256", "?"))[:12]
    return (f"seeds {seeds}, config sha256 {config}..., commit {commit}, "
            f"device {ds.attrs.get('device', '?')}")


def sweep_table(ds: xr.Dataset, variable: str, digits: int = 3) -> list[str]:
    """One row per method: ``variable`` (mean +/- std over seeds) at the `grid_points`."""
    lines = []
    columns: list[int] = []
    for method in methods_of(ds):
        sel = ds.sel({METHOD_DIM: method})
        hp = sel["hp_value"].values
        keep = np.flatnonzero(~np.isnan(hp))
        points = [int(keep[i]) for i in grid_points(len(keep))]
        columns = columns or points
        cells = [f"{mean_std(sel[variable].isel({GRID_DIM: h}).values, digits)} ({hp[h]:.3g})"
                 for h in points]
        lines.append(f"| {augment.title(method)} | " + " | ".join(cells) + " |")
    names = [f"grid point {h}" + (" (ERM)" if h == 0 else "") for h in columns]
    head = ["| method | " + " | ".join(names) + " |", "|---" * (len(columns) + 1) + "|"]
    return head + lines


def upper_half(ds: xr.Dataset, variable: str) -> list[str]:
    """Per method: ``variable`` averaged over the upper half of its grid; mean +/- std (seeds)."""
    lines = ["| method | mean over the upper half of the grid |", "|---|---|"]
    for method in methods_of(ds):
        sel = ds.sel({METHOD_DIM: method})
        keep = np.flatnonzero(~np.isnan(sel["hp_value"].values))
        upper = keep[len(keep) // 2:]
        per_seed = sel[variable].isel({GRID_DIM: upper}).mean(GRID_DIM).values
        lines.append(f"| {augment.title(method)} | {mean_std(per_seed, 4)} |")
    return lines


DIAGNOSIS = (("test_error", "test error"), ("test_error_recalibrated", "recalibrated"),
             ("channel_following", "channel following"),
             ("feature_variance_ratio", "feature-variance ratio"))
"""The four measurements of the class-channel table, with their column names."""


def class_channel_runs(ds: xr.Dataset) -> list[tuple[str, str, int, float]]:
    """(model, method, grid index, value) of every run of a class-channel result, in its order
    (grid points a method does not have are left out)."""
    runs = []
    for model in models_of(ds):
        for method in methods_of(ds):
            values = ds["hp_value"].sel({METHOD_DIM: method}).values
            runs += [(model, method, g, float(v)) for g, v in enumerate(values) if v == v]
    return runs


def resnet_table(ds: xr.Dataset) -> list[str]:
    """One row per model, method and value: the four measurements (`DIAGNOSIS`) at the final
    epoch and at the best epoch (the lowest mean zero-channel test error), mean +/- std over
    seeds, and the final training error."""
    head = ["model", "method"]
    for _, name in DIAGNOSIS:
        head += [f"{name}: final", f"{name}: best epoch" if name == "test error"
                 else f"{name}: at best"]
    head.append("final train error")
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    for model, method, grid, value in class_channel_runs(ds):
        run = ds.sel({MODEL_DIM: model, METHOD_DIM: method}).isel({GRID_DIM: grid})
        curve = run["test_error"].mean("seed").values
        best = int(np.nanargmin(curve)) if np.isfinite(curve).any() else len(curve) - 1
        cells = [models.title(model), augment.run_label(method, value)]
        for variable, name in DIAGNOSIS:
            final = mean_std(run[variable].isel(epoch=-1).values, 3)
            at_best = mean_std(run[variable].isel(epoch=best).values, 3)
            if name == "test error":
                at_best += f" ({int(run['epoch'].values[best])})"
            cells += [final, at_best]
        cells.append(mean_std(run["train_error"].isel(epoch=-1).values, 3))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def theory_table(trained: xr.Dataset, exact: xr.Dataset) -> list[str]:
    """Trained w_high_norm against the exact minimizer at the `grid_points` above ERM."""
    from labaug.exact import compare

    cmp = compare(trained, exact)
    lines = ["| method | hyperparameter | exact w_high_norm | trained (mean +/- std) | gap |",
             "|---|---|---|---|---|"]
    for method in methods_of(cmp):
        sel = cmp.sel({METHOD_DIM: method})
        hp = sel["hp_value"].values
        keep = np.flatnonzero(~np.isnan(hp) & ~np.isnan(sel["exact"].values))
        for i in sorted({keep[0], keep[len(keep) // 2], keep[-1]}) if len(keep) else []:
            lines.append(f"| {augment.title(method)} | {hp[i]:.4g} | "
                         f"{float(sel['exact'][i]):.4g} | "
                         f"{float(sel['trained_mean'][i]):.4f} +/- "
                         f"{float(sel['trained_std'][i]):.4f} | "
                         f"{100 * float(sel['gap'][i]):+.2f}% |")
    return lines


def summary_markdown(linear: Mapping[str, PathLike], theory: Mapping[str, PathLike],
                     resnet: Mapping[str, PathLike], command: str = "") -> str:
    """The whole summary; ``linear`` maps '{data}_{variance}' to files, ``theory`` maps
    variances to theory files, ``resnet`` maps datasets to files."""
    out = ["# Results summary", ""]
    if command:
        out += [f"Made by `{command}`, from the aggregated result files below.", ""]
    for name, path in linear.items():
        ds = read_netcdf(path)
        variable = "w_high_norm" if name.startswith("synthetic") else "pixel_ratio"
        out += [f"## Linear sweep `{name}` ({path})", "", _provenance(ds), ""]
        out += [f"`{variable}`, mean +/- std over seeds (hyperparameter in brackets):", ""]
        out += sweep_table(ds, variable) + [""]
        out += ["`test_error`:", ""] + sweep_table(ds, "test_error", 4) + [""]
        out += ["`test_error` averaged over the upper half of each grid:", ""]
        out += upper_half(ds, "test_error") + [""]
        variance = name.split("_")[-1]
        if name.startswith("synthetic") and variance in theory:
            out += [f"Exact minimizers ({theory[variance]}) against training, gap = "
                    "(trained mean - exact) / ||w*||:", ""]
            out += theory_table(ds, read_netcdf(theory[variance])) + [""]
    for name, path in resnet.items():
        ds = read_netcdf(path)
        out += [f"## Class channels `{name}` ({path})", "", _provenance(ds), "",
                f"Models: {', '.join(model_descriptions(ds))}; {ds.attrs.get('n_train', '?')} "
                f"training / {ds.attrs.get('n_test', '?')} test images, {ds.sizes['epoch']} "
                f"epochs; diagnosis on the first {ds.attrs.get('n_diagnosis', '?')} images.", "",
                f"### Where the class-channel claim holds (`{name}`)", "",
                "Mean +/- std over seeds at the final epoch and at the best epoch (the epoch of "
                "the lowest mean zero-channel test error). Test error: the paper's protocol "
                "(zero class channels, eval mode); recalibrated: the same after re-estimating "
                "BatchNorm statistics on zero-channel training inputs (- without running "
                "statistics); channel following: share of test images given another class's "
                "channel that are assigned to that class; feature-variance ratio: within-class "
                "over total variance of the penultimate features.", ""]
        out += resnet_table(ds) + [""]
    return "\n".join(out)


def write_summary(out: PathLike, linear: Mapping[str, PathLike], theory: Mapping[str, PathLike],
                  resnet: Mapping[str, PathLike], command: str = "") -> None:
    """Write `summary_markdown` to ``out`` atomically."""
    text = summary_markdown(linear, theory, resnet, command)
    with atomic_path(out) as tmp:
        with open(tmp, "w") as fh:
            fh.write(text + "\n")
