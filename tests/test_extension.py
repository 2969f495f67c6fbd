"""Adding a label augmentation is one module in its registry and its config keys.

A scratch copy of this repository gets one new module in ``labaug/augment/`` (registered
through the public extension point, `labaug.augment.register`) and its grid and ResNet value
in ``config.yaml``, exactly as the docs' "Add a method" says. The smoke DAG then runs it
everywhere the registry says it applies, with no other edit: it is in every result file and
every figure, and the theory step says by name that it has no exact minimizer. (A new dataset
needs no edit of the repository at all: `tests/test_datasets.py`.)
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import xarray as xr
import yaml

from labaug.results import METHOD_DIM
from tests.cluster.smoke import SMALL, snakemake, write_overrides
from tests.conftest import REPO

pytestmark = pytest.mark.slow

TOY_MODULE = '''"""Label shift: a toy method that moves weight p of a target to the next class."""

from __future__ import annotations

from torch import Tensor

from labaug.augment import register
from labaug.augment.base import Augmentation, Draws, along


@register
class LabelShift(Augmentation):
    """Targets (1 - p) t + p roll(t): deterministic, so it needs no draws."""

    name = "label_shift"
    title = "Label shift"
    hp_symbol = "p"
    hp_words = "label shift"
    color = "tab:purple"
    summary = "label shift moves weight p of each one-hot target to the next class"
    hp_maximum = 1.0

    def apply(self, x: Tensor, t: Tensor, values: Tensor, draws: Draws,
              partner: Tensor | None) -> tuple[Tensor, Tensor]:
        """Inputs (or logits) unchanged; each model's targets shifted by its own p."""
        p = along(values.to(t.dtype), t.ndim - 1)
        return x, (1.0 - p) * t + p * t.roll(1, dims=-1)
'''


def scratch_copy(dest: Path) -> Path:
    """The repository's tracked and untracked-but-not-ignored files, copied to ``dest``."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                           cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def add_toy_method(repo: Path) -> list[Path]:
    """Follow docs/extending.md: the module, and its entries in config.yaml. Returns the files
    touched."""
    module = repo / "labaug" / "augment" / "label_shift.py"
    module.write_text(TOY_MODULE)
    config_path = repo / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["methods"].append("label_shift")
    config["grids"]["label_shift"] = {"low": 0.0, "high": 0.2, "size": 20}
    config["resnet"]["hp"]["label_shift"] = 0.1
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    return [module, config_path]


def test_a_new_method_reaches_every_result_and_figure(tmp_path: Path) -> None:
    repo = scratch_copy(tmp_path / "repo")
    touched = add_toy_method(repo)
    assert len(touched) <= 2       # docs/extending.md: its module and config.yaml (+ tests)
    work = tmp_path / "run"
    work.mkdir()
    # The new method beside one of the others, on the zero-variance data: every experiment and
    # every rule still runs it (the other methods and the low-variance copies of the same
    # experiments would only add jobs that prove nothing more about the new method).
    write_overrides(work, {**SMALL, "methods": ["weight_decay", "label_shift"],
                           "variances": ["zero"]})
    proc = snakemake(work, "--cores", "2", repo=repo)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]

    results = sorted((work / "results").glob("*/*.nc"))
    with_methods = 0
    for path in results:
        with xr.open_dataset(path) as ds:
            if METHOD_DIM not in ds.dims:
                continue                                   # the Fig. 5 example
            with_methods += 1
            if path.parent.name == "theory":
                assert "label_shift" not in ds[METHOD_DIM].values
                assert "label_shift" in ds.attrs["methods_without_population_loss"]
            else:
                assert "label_shift" in ds[METHOD_DIM].values, path
                assert ds.sel(augmentation="label_shift")["test_error"].notnull().all()
    assert with_methods >= 4    # synthetic, images, theory, class channels

    figures = work / "logs" / "figures"
    for name in ("fig1", "fig2", "fig3", "fig4", "fig8"):
        assert "label_shift" in (figures / f"{name}.log").read_text(), name
        assert (work / "figures" / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"
    assert "label_shift" not in (figures / "theory.log").read_text()
    theory_log = (work / "logs" / "theory" / "synthetic_zero.log").read_text()
    assert "no population loss for label_shift" in theory_log
