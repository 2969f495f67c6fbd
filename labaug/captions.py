"""Report captions: workflow/report/{figure}.rst rendered with the configuration that built the
figure and the methods it shows.

Each caption is a Jinja template. It sees ``snakemake.config`` and ``methods``: one entry per
configured method that the figure's experiment runs (`labaug.augment`), with its title,
hyperparameter, summary, grid and ResNet value, so no caption names the methods itself.

The config a caption states is the one stored in the provenance of the figure's result files
(``config``: the union of the config slices of the jobs that made them, and their seeds), laid
over the workflow's config for anything the slices do not hold; so the report describes what
built each figure, not what `snakemake --report` was given. `ProvenanceCaption` renders it
only when the report asks (it is no Snakemake rerun trigger).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jinja2

from labaug import augment


def caption_methods(config: Mapping[str, Any], experiment: augment.Experiment
                    ) -> list[dict[str, Any]]:
    """What a caption says about each method of ``experiment``, in config order: its title,
    hyperparameter, summary, grid (None for a method with no grid, ERM) and ResNet values."""
    from labaug.config import hp_values

    out = []
    for name in augment.for_experiment(list(config["methods"]), experiment):
        method = augment.get(name)
        grid = config["grids"].get(name) if augment.swept(name) else None
        values = hp_values(config["resnet"]["hp"], name) if method.has_hp else ()
        out.append({
            "name": name, "title": method.title, "hp_words": method.hp_words,
            "hp_symbol": method.hp_symbol.lstrip("\\"), "summary": method.summary,
            "low": grid and grid["low"], "high": grid and grid["high"],
            "size": grid and grid["size"],
            "resnet_values": ", ".join(str(v) for v in values),
        })
    return out


def caption_models(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What a caption says about each class-channel model, in config order."""
    from labaug import models

    r = config["resnet"]
    return [{"name": name, "title": models.get(name).title, "summary": models.get(name).summary,
             "description": models.describe_model(name, int(r["width"]), r["mlp_hidden"])}
            for name in r["models"]]


def figure_caption(figure: str, experiment: augment.Experiment, config: Mapping[str, Any],
                   basedir: str | os.PathLike[str]) -> str:
    """The rendered caption of ``figure`` (reStructuredText)."""
    path = Path(basedir) / "workflow" / "report" / f"{figure}.rst"
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True,
                             undefined=jinja2.StrictUndefined, autoescape=False)
    template = env.from_string(path.read_text())
    return template.render(snakemake=SimpleNamespace(config=config),
                           methods=caption_methods(config, experiment),
                           models=caption_models(config))


def built_config(config: Mapping[str, Any], files: Sequence[str | os.PathLike[str]]
                 ) -> tuple[dict[str, Any], list[str]]:
    """``config`` with the provenance config of each existing result file laid over it, and the
    seeds those files hold; also the files that had no provenance config (none: all had)."""
    import xarray as xr

    from labaug.results import merge_configs

    parts: list[dict[str, Any]] = []
    seeds: set[int] = set()
    missing: list[str] = []
    for path in files:
        try:
            with xr.open_dataset(path) as ds:
                if "config" not in ds.attrs:
                    missing.append(str(path))
                    continue
                parts.append(json.loads(str(ds.attrs["config"])))
                if "seed" in ds.coords:
                    seeds.update(int(v) for v in ds["seed"].values)
        except (OSError, ValueError) as err:
            log.warning("caption: cannot read %s (%s); using the workflow config", path, err)
            missing.append(str(path))
    merged = merge_configs([dict(config), *parts])
    merged.pop("methods", None)              # a theory slice's solvable methods are not the
    merged["methods"] = list(config["methods"])  # figure's; the files' methods are in config
    if seeds:
        merged["seeds"] = sorted(seeds)
    return merged, missing


PAPER_METHODS = ("label_smoothing", "mixup")
"""The label augmentations the paper's claims are about (others, e.g. CutMix, are reported too)."""


def claim_lines(path: str | os.PathLike[str], claims: Sequence[tuple[str, str]]) -> list[str]:
    """One line per (method, claim): where the run puts the method on the claimed side of weight
    decay. Sweeps: at how many nonzero grid points; class channels: at the final epoch, per
    model, against weight decay's first value (the paper's)."""
    import numpy as np

    from labaug.results import GRID_DIM, METHOD_DIM, methods_of, read_netcdf

    out: list[str] = []
    ds = read_netcdf(path)
    if METHOD_DIM not in ds.dims or "weight_decay" not in ds[METHOD_DIM].values:
        return out
    name = Path(path).stem
    for variable, side in claims:
        if variable not in ds or "seed" not in ds[variable].dims:
            continue            # e.g. the exact minimizers: no trained runs
        sign = 1.0 if side == "above" else -1.0
        if "epoch" in ds[variable].dims:
            out += _class_channel_claims(ds, name, variable, sign)
            continue
        base = ds[variable].sel({METHOD_DIM: "weight_decay"}).mean("seed")
        for method in [m for m in methods_of(ds) if m != "weight_decay"]:
            mean = ds[variable].sel({METHOD_DIM: method}).mean("seed")
            claim = "" if method in PAPER_METHODS else " (not in the paper)"
            n = min(mean.sizes[GRID_DIM], base.sizes[GRID_DIM])
            diff = sign * (mean.values[1:n] - base.values[1:n])
            diff = diff[~np.isnan(diff)]
            agree = int(np.sum(diff > 0))
            out.append(f"- {name}: {augment.title(method)}{claim} {variable} {side} weight "
                       f"decay's at {agree} of {len(diff)} nonzero grid points"
                       + ("" if agree == len(diff) else " (the claim does NOT hold at the "
                          "others)"))
    return out


def _class_channel_claims(ds: Any, name: str, variable: str, sign: float) -> list[str]:
    """`claim_lines` for a class-channel result: per model, each run's final ``variable``
    against weight decay's at its first value."""
    import numpy as np

    from labaug import models
    from labaug.results import GRID_DIM, METHOD_DIM, MODEL_DIM, methods_of, models_of

    out = []
    for model in models_of(ds):
        at_model = ds[variable].sel({MODEL_DIM: model}).isel(epoch=-1).mean("seed")
        wd = at_model.sel({METHOD_DIM: "weight_decay"}).isel({GRID_DIM: 0})
        ref, ref_value = float(wd), float(wd["hp_value"])
        # The claim compares label augmentations with weight decay: not ERM, not weight decay
        # at its other strengths (Fig. 8 shows those).
        for method in [m for m in methods_of(ds)
                       if m != "weight_decay" and augment.get(m).has_hp]:
            claim = "" if method in PAPER_METHODS else " (not in the paper)"
            for grid, value in enumerate(ds["hp_value"].sel({METHOD_DIM: method}).values):
                if value != value:
                    continue
                last = float(at_model.sel({METHOD_DIM: method}).isel({GRID_DIM: grid}))
                if np.isnan(last) or np.isnan(ref):
                    continue
                verdict = "agrees" if sign * (last - ref) > 0 else "does NOT agree"
                out.append(f"- {name}, {models.title(model)}: "
                           f"{augment.run_label(method, float(value))}{claim} final {variable} "
                           f"{last:.3g} against weight decay's (lambda = {ref_value:g}) "
                           f"{ref:.3g}: {verdict}")
    return out


DIAGNOSIS_WORDS = (("test_error", "test error"),
                   ("test_error_recalibrated", "recalibrated test error"),
                   ("channel_following", "channel following"),
                   ("feature_variance_ratio", "feature-variance ratio"))


def diagnosis_lines(path: str | os.PathLike[str]) -> list[str]:
    """Per model of a class-channel result: the range of each diagnosis measure's final value
    over its runs (mean over seeds), naming the runs at the ends: what Fig. 8 plots, in words."""
    import numpy as np

    from labaug import models
    from labaug.results import GRID_DIM, METHOD_DIM, MODEL_DIM, methods_of, models_of, read_netcdf

    ds = read_netcdf(path)
    if MODEL_DIM not in ds.dims:
        return []
    out = []
    for model in models_of(ds):
        parts = []
        for variable, words in DIAGNOSIS_WORDS:
            finals = []
            for method in methods_of(ds):
                for grid, value in enumerate(ds["hp_value"].sel({METHOD_DIM: method}).values):
                    run = ds[variable].sel({MODEL_DIM: model, METHOD_DIM: method})
                    final = float(run.isel({GRID_DIM: grid, "epoch": -1}).mean("seed"))
                    if value == value and not np.isnan(final):
                        finals.append((final, augment.run_label(method, float(value))))
            if finals:
                low, high = min(finals), max(finals)
                parts.append(f"{words} from {low[0]:.3g} ({low[1]}) to {high[0]:.3g} "
                             f"({high[1]})")
            else:
                parts.append(f"{words}: not measured (no running statistics)")
        out.append(f"- {Path(path).stem}, {models.title(model)}, final epoch: "
                   + "; ".join(parts))
    return out


class ProvenanceCaption:
    """A figure's caption, rendered when the report prints it, from its result files' provenance.

    Its repr is constant, so Snakemake's params record neither triggers reruns nor changes when
    a caption template is edited; the object pickles into the figure job like any parameter.
    """

    def __init__(self, figure: str, experiment: augment.Experiment, config: Mapping[str, Any],
                 basedir: str | os.PathLike[str], files: Sequence[str],
                 claims: Sequence[tuple[str, str]] = ()) -> None:
        self.figure, self.experiment = figure, experiment
        self.config = json.loads(json.dumps(config, default=str))
        self.basedir, self.files = str(basedir), list(files)
        self.claims = [(str(v), str(side)) for v, side in claims]

    def __repr__(self) -> str:
        """Constant: this is no rerun trigger."""
        return f"ProvenanceCaption({self.figure!r})"

    def __str__(self) -> str:
        """The caption for the configuration that built the figure's result files."""
        existing = [f for f in self.files if Path(f).exists()]
        config, missing = built_config(self.config, existing)
        text = figure_caption(self.figure, self.experiment, config, self.basedir)
        source = ("the provenance of its result files" if existing and not missing
                  else "the workflow's config (no result file with provenance was found)")
        lines = [line for path in existing for line in claim_lines(path, self.claims)]
        if self.figure == "fig8":
            lines += [line for path in existing for line in diagnosis_lines(path)]
        if lines:
            text += ("\n\n*What this run shows* (mean over seeds, compared with weight decay "
                     "at the same grid point or epoch):\n\n" + "\n".join(lines))
        return text + f"\n\n*This caption states the configuration read from {source}.*\n"


log = logging.getLogger(__name__)
