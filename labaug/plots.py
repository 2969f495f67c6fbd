"""One function per figure; every figure is drawn only from result netCDF files."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.image import AxesImage  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from labaug import augment  # noqa: E402
from labaug.datasets import title as dataset_title  # noqa: E402
from labaug.io import atomic_path  # noqa: E402
from labaug.results import (  # noqa: E402
    GRID_DIM,
    METHOD_DIM,
    MODEL_DIM,
    methods_of,
    model_descriptions,
    models_of,
    read_netcdf,
)

PathLike = str | os.PathLike[str]
log = logging.getLogger(__name__)


def method_color(name: str) -> str:
    """A method's colour from the registry (grey if it is not registered here)."""
    return augment.get(name).color if name in augment.names() else "tab:gray"


def hp_label(name: str) -> str:
    """A method's hyperparameter axis label from the registry."""
    return augment.get(name).hp_label() if name in augment.names() else name


def at(ds: xr.Dataset, method: str) -> xr.Dataset:
    """``ds`` at one method."""
    return ds.sel({METHOD_DIM: method})


def mean_std_band(ax: Axes, x: np.ndarray, values: np.ndarray, color: str,
                  label: str | None = None, linestyle: str = "-", alpha: float = 0.25) -> None:
    """Plot the mean over the last axis of ``values`` with a shaded +/- 1 std band."""
    mean = np.nanmean(values, axis=-1)
    std = np.nanstd(values, axis=-1)
    ax.plot(x, mean, color=color, marker="o", markersize=3, label=label, linestyle=linestyle)
    ax.fill_between(x, mean - std, mean + std, color=color, alpha=alpha, linewidth=0)


GRID_STYLES = ("-", "--", ":", "-.")
"""The line style of a method's first, second, ... value in the class-channel figures."""


@dataclass(frozen=True)
class RunLine:
    """One line of a class-channel figure: a method at one of its values."""

    method: str
    grid: int
    value: float
    label: str
    """For legends: the method's title, with its value where it has several."""
    name: str
    """For logs: the method's name, with its value where it has several."""
    color: str
    linestyle: str


def run_lines(ds: xr.Dataset) -> list[RunLine]:
    """The (method, value) runs of a class-channel result in its order; a method's value is in
    its label where the method has several."""
    lines = []
    for method in methods_of(ds):
        values = [float(v) for v in ds["hp_value"].sel({METHOD_DIM: method}).values]
        present = [(g, v) for g, v in enumerate(values) if v == v]
        several = len(present) > 1
        for k, (g, v) in enumerate(present):
            label = augment.run_label(method, v if several else None, math=True)
            lines.append(RunLine(method, g, v, label, f"{method}={v:g}" if several else method,
                                 method_color(method), GRID_STYLES[k % len(GRID_STYLES)]))
    return lines


def run_values(ds: xr.Dataset, model: str, line: RunLine, variable: str) -> np.ndarray:
    """One run's ``variable`` as (epoch, seed)."""
    sel = ds.sel({MODEL_DIM: model, METHOD_DIM: line.method}).isel({GRID_DIM: line.grid})
    return sel[variable].transpose("epoch", "seed").values


def sweep_grid(
    rows: Sequence[tuple[str, xr.Dataset]],
    variable: str | Sequence[str],
    ylabel: str | Sequence[str],
    title: str,
    overlay: Sequence[xr.Dataset | None] | None = None,
) -> Figure:
    """Rows of sweep results, one column per method: ``variable`` against the hyperparameter.

    ``variable`` and ``ylabel`` are one for all rows or one per row. ``overlay`` (one per
    row, or None) holds exact minimizers drawn as dashed lines.
    """
    variables = [variable] * len(rows) if isinstance(variable, str) else list(variable)
    ylabels = [ylabel] * len(rows) if isinstance(ylabel, str) else list(ylabel)
    methods = methods_of(rows[0][1])
    log.info("%s: one column per method: %s", title.split(":")[0], ", ".join(methods))
    fig, axes = plt.subplots(len(rows), len(methods), figsize=(4.2 * len(methods),
                             3.2 * len(rows)), squeeze=False, constrained_layout=True,
                             sharey="row")  # methods of a row compare on one scale
    for r, (row_label, ds) in enumerate(rows):
        for c, method in enumerate(methods):
            ax = axes[r, c]
            sel = at(ds, method)
            x = sel["hp_value"].values
            keep = ~np.isnan(x)
            mean_std_band(ax, x[keep], sel[variables[r]].transpose(GRID_DIM, "seed").values[keep],
                          method_color(method), label="trained (mean $\\pm$ 1 std)")
            theory = overlay[r] if overlay is not None else None
            if theory is not None and method in theory[METHOD_DIM].values:
                th = at(theory, method)
                tx = th["hp_value"].values
                tk = ~np.isnan(tx) & ~np.isnan(th[variables[r]].values)
                ax.plot(tx[tk], th[variables[r]].values[tk], "k--", linewidth=1.2,
                        label="exact minimizer")
            ax.set_xlabel(hp_label(method))
            ax.set_title(f"{row_label}: {augment.title(method)}", fontsize=10)
            ax.grid(alpha=0.3)
            if c == 0:
                ax.set_ylabel(ylabels[r])
            if r == 0 and c == 0:
                ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    return fig


PREVIEW_DPI = 100
"""Resolution of the PNG preview written beside every PDF figure (the docs' gallery)."""


def preview_path(out: PathLike) -> str:
    """The PNG preview beside a PDF figure: the same name, ending in .png."""
    return os.path.splitext(str(out))[0] + ".png"


def save(fig: Figure, out: PathLike) -> None:
    """Write a figure atomically (and, for a PDF, its PNG preview beside it) and release it."""
    kind = os.path.splitext(str(out))[1].lstrip(".") or "pdf"
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format=kind)
    if kind == "pdf":
        write_preview(fig, preview_path(out))
    plt.close(fig)


def write_preview(fig: Figure, out: PathLike) -> None:
    """The figure as a PNG of at most 256 colours (a few times smaller than full colour; line
    plots lose nothing visible), written atomically."""
    import io

    from PIL import Image

    buffer = io.BytesIO()    # in memory; the file itself is written through atomic_path below
    fig.savefig(buffer, format="png", dpi=PREVIEW_DPI)
    buffer.seek(0)
    with Image.open(buffer) as image:
        palette = image.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE)
    with atomic_path(out) as tmp:
        palette.save(tmp, format="PNG")


def synthetic_figure(result: PathLike, out: PathLike, title: str,
                     theory: PathLike | None = None) -> None:
    """Figures 1 and 6: high-variance weight norm against each method's hyperparameter."""
    ds = read_netcdf(result)
    overlay = [read_netcdf(theory)] if theory is not None else None
    fig = sweep_grid([("synthetic", ds)], "w_high_norm",
                     "high-variance weight norm " + r"$\|w_{\mathrm{high}}\|$", title, overlay)
    save(fig, out)


def fig1(result: PathLike, out: PathLike, theory: PathLike | None = None) -> None:
    """Figure 1: synthetic data, zero-variance low block."""
    synthetic_figure(result, out, "Fig. 1: synthetic data (Def. 4.1), zero-variance feature",
                     theory)


def fig6(result: PathLike, out: PathLike, theory: PathLike | None = None) -> None:
    """Figure 6: synthetic data, low-variance low block (Appendix B)."""
    synthetic_figure(result, out, "Fig. 6: synthetic data, low-variance feature (App. B)",
                     theory)


TEST_ERROR_LABEL = "test error (fraction misclassified)"
PIXEL_RATIO_LABEL = "identifying-pixel weight ratio " + r"$|w_1| / \|w_{\mathrm{rest}}\|$"


def image_rows(results: dict[str, PathLike]) -> list[tuple[str, xr.Dataset]]:
    """One (title, sweep) row per image dataset, in the order given (config image_datasets)."""
    if not results:
        raise ValueError("no image dataset results to draw (config image_datasets is empty)")
    rows = []
    for name, path in results.items():
        ds = read_netcdf(path)
        pair = ds.attrs.get("class_pair")
        title = dataset_title(name)
        rows.append((f"{title} ({pair})" if pair else title, ds))
    return rows


def fig2(out: PathLike, **results: PathLike) -> None:
    """Figure 2: binary image tasks with a zero-variance identifying pixel: test error."""
    fig = sweep_grid(image_rows(results), "test_error", TEST_ERROR_LABEL,
                     "Fig. 2: binary images, identifying pixel y*gamma in training data only")
    save(fig, out)


def fig3(out: PathLike, **results: PathLike) -> None:
    """Figure 3: binary image tasks with a zero-variance identifying pixel: pixel ratio."""
    fig = sweep_grid(image_rows(results), "pixel_ratio", PIXEL_RATIO_LABEL,
                     "Fig. 3: weight on the identifying pixel relative to the rest of the image")
    save(fig, out)


def fig7(out: PathLike, **results: PathLike) -> None:
    """Figure 7 (App. B): low-variance identifying pixel: test error and pixel ratio rows."""
    rows, variables, ylabels = [], [], []
    for title, ds in image_rows(results):
        rows += [(title, ds), (title, ds)]
        variables += ["test_error", "pixel_ratio"]
        ylabels += [TEST_ERROR_LABEL, PIXEL_RATIO_LABEL]
    fig = sweep_grid(rows, variables, ylabels,
                     "Fig. 7: low-variance identifying pixel (App. B)")
    save(fig, out)


def fig4(out: PathLike, **results: PathLike) -> None:
    """Figure 4: test error per epoch with class channels in training only; one panel per
    dataset, one row per model, one line per method (and value)."""
    if not results:
        raise ValueError("no class-channel results to draw (config resnet.datasets is empty)")
    data = {name: read_netcdf(path) for name, path in results.items()}
    rows = models_of(next(iter(data.values())))
    fig, axes = plt.subplots(len(rows), len(data), figsize=(max(6.0, 4.6 * len(data)),
                             3.8 * len(rows)), squeeze=False, constrained_layout=True)
    for r, model in enumerate(rows):
        for c, (name, ds) in enumerate(data.items()):
            ax = axes[r, c]
            lines = run_lines(ds)
            log.info("Fig. 4, %s, %s: one line per method: %s", name, model,
                     ", ".join(line.name for line in lines))
            for line in lines:
                mean_std_band(ax, ds["epoch"].values, run_values(ds, model, line, "test_error"),
                              line.color, label=line.label, linestyle=line.linestyle)
            described = dict(zip(models_of(ds), model_descriptions(ds), strict=True))
            ax.set_title(f"{dataset_title(name)} ({described.get(model, model)}; "
                         f"{ds.attrs.get('n_train', '?')} training images)", fontsize=10)
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylabel("test error (test inputs carry zero class channels)")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    seeds = next(iter(data.values())).sizes["seed"]
    fig.suptitle("Fig. 4: test error, identifying class channels in training data only\n"
                 f"(mean $\\pm$ 1 std over {seeds} seeds)", fontsize=11)
    save(fig, out)


DIAGNOSIS_PANELS = (
    ("test_error", "test error, running statistics\n(the paper's protocol, Fig. 4)"),
    ("test_error_recalibrated", "test error, BatchNorm statistics\nre-estimated on "
                                "zero-channel inputs"),
    ("channel_following", "channel following: share assigned\nto the class of the given "
                          "channel"),
    ("feature_variance_ratio", "feature-variance ratio:\nwithin-class / total variance"),
)
"""Fig. 8's columns over epochs: (variable, column title); the weight-decay panel comes last."""


def fig8(out: PathLike, **results: PathLike) -> None:
    """Figure 8: the class-channel diagnosis. One row per model (and dataset): test error with
    running and with recalibrated statistics, channel following and feature-variance ratio per
    epoch, one line per method and value; last, the final values against weight decay's
    strength, ERM (no weight decay) as dotted lines."""
    if not results:
        raise ValueError("no class-channel results to draw (config resnet.datasets is empty)")
    rows = [(name, ds, model) for name, ds in
            ((n, read_netcdf(p)) for n, p in results.items()) for model in models_of(ds)]
    columns = len(DIAGNOSIS_PANELS) + 1
    fig, axes = plt.subplots(len(rows), columns, figsize=(3.4 * columns, 2.9 * len(rows) + 1.2),
                             squeeze=False, constrained_layout=True, sharex="col")
    handles: dict[str, Any] = {}
    for r, (name, ds, model) in enumerate(rows):
        described = dict(zip(models_of(ds), model_descriptions(ds), strict=True))
        k = int(ds.attrs.get("num_classes", 0))
        lines = run_lines(ds)
        log.info("Fig. 8, %s, %s: one line per method: %s", name, model,
                 ", ".join(line.name for line in lines))
        for c, (variable, title) in enumerate(DIAGNOSIS_PANELS):
            ax = axes[r, c]
            drawn = False
            for line in lines:
                values = run_values(ds, model, line, variable)
                if np.isnan(values).all():
                    continue
                mean_std_band(ax, ds["epoch"].values, values, line.color, label=line.label,
                              linestyle=line.linestyle, alpha=0.15)
                drawn = True
            if not drawn:
                ax.text(0.5, 0.5, "no running statistics\n(no BatchNorm layer)",
                        ha="center", va="center", transform=ax.transAxes, fontsize=9)
            if k and variable == "channel_following":
                ax.axhline(1.0 / k, color="gray", linewidth=0.8, linestyle=":")
            elif k and variable.startswith("test_error"):
                ax.axhline(1.0 - 1.0 / k, color="gray", linewidth=0.8, linestyle=":")
            ax.set_ylim(-0.03, 1.03)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
            if r == 0:
                ax.set_title(title, fontsize=9)
            if r == len(rows) - 1:
                ax.set_xlabel("epoch")
            if c == 0:
                ax.set_ylabel(f"{dataset_title(name)}\n{described.get(model, model)}",
                              fontsize=9, fontweight="bold")
            for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
                handles.setdefault(label, handle)
        weight_decay_panel(axes[r, -1], ds, model, title=r == 0, xlabel=r == len(rows) - 1)
    fig.legend(list(handles.values()), list(handles), loc="outside lower center",
               ncol=min(len(handles), 7), fontsize=8)
    seeds = rows[0][1].sizes["seed"] if rows else 0
    fig.suptitle("Fig. 8: when do models rely on the class channels? (mean $\\pm$ 1 std over "
                 f"{seeds} seeds; dotted grey: chance)", fontsize=11)
    save(fig, out)


STRENGTH_LINES = (("test_error", "black", "test error"),
                  ("test_error_recalibrated", "dimgray", "recalibrated test error"),
                  ("channel_following", "tab:purple", "channel following"),
                  ("feature_variance_ratio", "tab:brown", "feature-variance ratio"))


def weight_decay_panel(ax: Axes, ds: xr.Dataset, model: str, title: bool = True,
                       xlabel: bool = True) -> None:
    """Final-epoch measurements of one model against weight decay's strength (log axis), mean
    and 1 std over seeds; ERM's as dotted horizontal lines."""
    if title:
        ax.set_title("final epoch against weight decay's\nstrength (dotted: ERM)", fontsize=9)
    ax.set_ylim(-0.03, 1.03)
    ax.grid(alpha=0.3)
    if "weight_decay" not in methods_of(ds):
        ax.text(0.5, 0.5, "no weight-decay runs", ha="center", va="center",
                transform=ax.transAxes, fontsize=9)
        return
    sel = ds.sel({MODEL_DIM: model, METHOD_DIM: "weight_decay"})
    lam = sel["hp_value"].values
    keep = np.flatnonzero((lam == lam) & (lam > 0))
    for variable, color, label in STRENGTH_LINES:
        final = sel[variable].isel({GRID_DIM: keep, "epoch": -1}).values    # (grid, seed)
        if np.isnan(final).all():
            continue
        ax.errorbar(lam[keep], np.nanmean(final, axis=-1), yerr=np.nanstd(final, axis=-1),
                    color=color, marker="o", markersize=4, capsize=2, label=label)
        if "erm" in methods_of(ds):
            erm = ds.sel({MODEL_DIM: model, METHOD_DIM: "erm"}).isel({GRID_DIM: 0, "epoch": -1})
            ax.axhline(float(np.nanmean(erm[variable].values)), color=color, linestyle=":",
                       linewidth=1)
    ax.set_xscale("log")
    if xlabel:
        ax.set_xlabel(r"weight decay $\lambda$")
    ax.legend(fontsize=7)


def _channel_panel(ax: Axes, values: np.ndarray, limit: float, cmap: str,
                   title: str) -> AxesImage:
    """One channel as an image on a symmetric colour scale [-limit, limit]."""
    shown = ax.imshow(values, cmap=cmap, vmin=-limit, vmax=limit, interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    return shown


def fig5(out: PathLike, example: PathLike) -> None:
    """Figure 5: the class-channel transform of one training image, and the test input."""
    ds = read_netcdf(example)
    n_ch = ds.sizes["channel"]
    image = ds["image"].values
    train_input, test_input = ds["train_input"].values, ds["test_input"].values
    img_limit = float(np.abs(train_input[:n_ch]).max()) or 1.0
    vec_limit = 3.0 * float(ds.attrs["class_channel_sigma"]) or 1.0
    # Panels as wide as they are tall, plus room for the two colour bars: no empty columns.
    fig, axes = plt.subplots(3, 2 * n_ch, figsize=(2.1 * 2 * n_ch + 1.6, 7.0),
                             squeeze=False, constrained_layout=True)
    shown: dict[str, AxesImage] = {}
    for ax in axes.ravel():
        ax.set_axis_off()
    # Row 0: the image as seen, and the class vector of its class.
    ax = axes[0, 0]
    ax.set_axis_on()
    if n_ch == 3:
        ax.imshow(np.clip(np.moveaxis(image, 0, -1), 0, 1), interpolation="nearest")
    else:
        ax.imshow(image[0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(f"training image ({ds.attrs['class_name']})", fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    for c in range(n_ch):
        ax = axes[0, n_ch + c]
        ax.set_axis_on()
        _channel_panel(ax, ds["class_vector"].values[c], vec_limit, "RdBu_r",
                       f"class vector, ch. {c + 1}")
    # Rows 1-2: every channel of the training input and of the test input.
    for row, (values, name) in enumerate(((train_input, "train"), (test_input, "test")), 1):
        for c in range(2 * n_ch):
            ax = axes[row, c]
            ax.set_axis_on()
            is_class = c >= n_ch
            zeros = is_class and not np.any(values[c])
            kind = "class" if is_class else "image"
            shown[kind] = _channel_panel(
                ax, values[c], vec_limit if is_class else img_limit,
                "RdBu_r" if is_class else "gray",
                f"{name} input ch. {c + 1}"
                + ((" (class: all zeros)" if zeros else " (class)") if is_class else ""))
    fig.colorbar(shown["image"], ax=axes[1:, :n_ch].ravel().tolist(), shrink=0.8,
                 label="standardized pixel value")
    fig.colorbar(shown["class"], ax=axes[:, n_ch:].ravel().tolist(), shrink=0.8,
                 label="class-channel value (white = 0)")
    fig.suptitle(f"Fig. 5: {dataset_title(ds.attrs['dataset'])}: "
                 "training inputs carry their class's vector\nN(0, $\\sigma^2 I$), "
                 f"$\\sigma$ = {float(ds.attrs['class_channel_sigma']):.3g}; "
                 "test inputs carry zeros", fontsize=10)
    save(fig, out)


def theory_comparison(out: PathLike, **files: PathLike) -> None:
    """Trained w_high_norm (mean +/- 1 std) against the exact minimizer, and the gap between.

    ``files`` holds ``result_{variance}`` (a linear sweep) and ``theory_{variance}`` (the exact
    minimizers, labaug.theory) for each synthetic variant drawn, one pair of rows each.
    """
    from labaug.exact import compare

    variances = [k.removeprefix("result_") for k in files if k.startswith("result_")]
    comparisons = [(v, compare(read_netcdf(files[f"result_{v}"]),
                               read_netcdf(files[f"theory_{v}"]))) for v in variances]
    methods = methods_of(comparisons[0][1])
    log.info("theory comparison: one column per method with an exact minimizer: %s",
             ", ".join(methods))
    fig, axes = plt.subplots(2 * len(comparisons), len(methods),
                             figsize=(4.2 * len(methods), 2.9 * 2 * len(comparisons)),
                             squeeze=False, constrained_layout=True)
    for r, (variance, cmp) in enumerate(comparisons):
        for c, method in enumerate(methods):
            sel = at(cmp, method)
            x = sel["hp_value"].values
            keep = ~np.isnan(x) & ~np.isnan(sel["exact"].values)
            color = method_color(method)
            mean, std = sel["trained_mean"].values[keep], sel["trained_std"].values[keep]
            ax = axes[2 * r, c]
            ax.plot(x[keep], mean, color=color, marker="o", markersize=3,
                    label="trained (mean $\\pm$ 1 std)")
            ax.fill_between(x[keep], mean - std, mean + std, color=color, alpha=0.25,
                            linewidth=0)
            ax.plot(x[keep], sel["exact"].values[keep], "k--", linewidth=1.2,
                    label="exact minimizer")
            ax.set_title(f"{variance} variance: {augment.title(method)}", fontsize=10)
            ax.grid(alpha=0.3)
            if c == 0:
                ax.set_ylabel(r"$\|w_{\mathrm{high}}\|$")
                ax.legend(fontsize=8)
            ax = axes[2 * r + 1, c]
            gap = 100.0 * sel["gap"].values[keep]
            ax.plot(x[keep], gap, color=color, marker="o", markersize=3)
            ax.axhline(0.0, color="k", linewidth=0.8, linestyle=":")
            worst = float(np.max(np.abs(gap))) if gap.size else float("nan")
            ax.set_title(f"gap; largest |gap| {worst:.2g}%", fontsize=9)
            ax.set_xlabel(hp_label(method))
            ax.grid(alpha=0.3)
            if c == 0:
                ax.set_ylabel("(trained $-$ exact) / $\\|w^*\\|$ [%]")
    fig.suptitle("Synthetic data: trained models against the exact minimizers of the "
                 "population losses (Theorems 3.1, 3.3, 3.4)", fontsize=11)
    save(fig, out)
