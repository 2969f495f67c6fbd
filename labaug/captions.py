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
    """What a caption says about each method of ``experiment``, in config order."""
    out = []
    for name in augment.for_experiment(list(config["methods"]), experiment):
        method = augment.get(name)
        grid = config["grids"][name]
        out.append({
            "name": name, "title": method.title, "hp_words": method.hp_words,
            "hp_symbol": method.hp_symbol.lstrip("\\"), "summary": method.summary,
            "low": grid["low"], "high": grid["high"], "size": grid["size"],
            "resnet_value": config["resnet"]["hp"].get(name),
        })
    return out


def figure_caption(figure: str, experiment: augment.Experiment, config: Mapping[str, Any],
                   basedir: str | os.PathLike[str]) -> str:
    """The rendered caption of ``figure`` (reStructuredText)."""
    path = Path(basedir) / "workflow" / "report" / f"{figure}.rst"
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True,
                             undefined=jinja2.StrictUndefined, autoescape=False)
    template = env.from_string(path.read_text())
    return template.render(snakemake=SimpleNamespace(config=config),
                           methods=caption_methods(config, experiment))


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
    decay. Sweeps: at how many nonzero grid points; class channels: at the final epoch."""
    import numpy as np
    import xarray as xr

    from labaug.results import METHOD_DIM, methods_of

    out: list[str] = []
    with xr.open_dataset(path) as ds:
        if METHOD_DIM not in ds.dims or "weight_decay" not in ds[METHOD_DIM].values:
            return out
        name = Path(path).stem
        for variable, side in claims:
            if variable not in ds or "seed" not in ds[variable].dims:
                continue            # e.g. the exact minimizers: no trained runs
            base = ds[variable].sel({METHOD_DIM: "weight_decay"}).mean("seed")
            for method in [m for m in methods_of(ds) if m != "weight_decay"]:
                mean = ds[variable].sel({METHOD_DIM: method}).mean("seed")
                sign = 1.0 if side == "above" else -1.0
                title = augment.title(method)
                claim = "" if method in PAPER_METHODS else " (not in the paper)"
                if "epoch" in mean.dims:
                    last, ref = float(mean.isel(epoch=-1)), float(base.isel(epoch=-1))
                    verdict = "agrees" if sign * (last - ref) > 0 else "does NOT agree"
                    out.append(f"- {name}: {title}{claim} final {variable} {last:.3g} against "
                               f"weight decay's {ref:.3g}: {verdict}")
                    continue
                n = min(mean.sizes["hp"], base.sizes["hp"])
                diff = sign * (mean.values[1:n] - base.values[1:n])
                diff = diff[~np.isnan(diff)]
                agree = int(np.sum(diff > 0))
                out.append(f"- {name}: {title}{claim} {variable} {side} weight decay's at "
                           f"{agree} of {len(diff)} nonzero grid points"
                           + ("" if agree == len(diff) else " (the claim does NOT hold at the "
                              "others)"))
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
        if lines:
            text += ("\n\n*What this run shows* (mean over seeds, compared with weight decay "
                     "at the same grid point or epoch):\n\n" + "\n".join(lines))
        return text + f"\n\n*This caption states the configuration read from {source}.*\n"


log = logging.getLogger(__name__)
