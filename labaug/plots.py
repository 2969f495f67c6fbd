"""One function per figure; every figure is drawn only from result netCDF files."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

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
from labaug.data.raw import dataset_title  # noqa: E402
from labaug.io import atomic_path  # noqa: E402
from labaug.results import METHOD_DIM, methods_of, read_netcdf  # noqa: E402

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
                  label: str | None = None) -> None:
    """Plot the mean over the last axis of ``values`` with a shaded +/- 1 std band."""
    mean = np.nanmean(values, axis=-1)
    std = np.nanstd(values, axis=-1)
    ax.plot(x, mean, color=color, marker="o", markersize=3, label=label)
    ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.25, linewidth=0)


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
            mean_std_band(ax, x[keep], sel[variables[r]].transpose("hp", "seed").values[keep],
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


def save(fig: Figure, out: PathLike) -> None:
    """Write a figure atomically and release it."""
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format=os.path.splitext(str(out))[1].lstrip(".") or "pdf")
    plt.close(fig)


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
    """Figure 4: ResNet-18 with class channels, test error per epoch, one panel per dataset."""
    if not results:
        raise ValueError("no ResNet results to draw (config resnet.datasets is empty)")
    fig, axes = plt.subplots(1, len(results), figsize=(max(6.0, 4.6 * len(results)), 3.8),
                             squeeze=False, constrained_layout=True)
    for ax, (name, path) in zip(axes[0], results.items(), strict=True):
        ds = read_netcdf(path)
        epochs = ds["epoch"].values
        log.info("Fig. 4, %s: one line per method: %s", name, ", ".join(methods_of(ds)))
        for method in methods_of(ds):
            values = at(ds, method)["test_error"].transpose("epoch", "seed").values
            mean_std_band(ax, epochs, values, method_color(method), label=augment.title(method))
        model = ds.attrs.get("model", f"ResNet-18, width {ds.attrs.get('width', '?')}")
        ax.set_title(f"{dataset_title(name)} ({model}; {ds.attrs.get('n_train', '?')} "
                     "training images)", fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("test error (test inputs carry zero class channels)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Fig. 4: test error, identifying class channels in training data only\n"
                 f"(mean $\\pm$ 1 std over {ds.sizes['seed']} seeds)", fontsize=11)
    save(fig, out)


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
