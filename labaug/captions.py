"""Report captions: workflow/report/{figure}.rst rendered with the config and the methods shown.

Each caption is a Jinja template. It sees ``snakemake.config`` (the run's config, as in a
Snakemake caption) and ``methods``: one entry per configured method that the figure's
experiment runs (`labaug.augment`), with its title, hyperparameter, summary, grid and ResNet
value, so no caption names the methods itself.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
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
