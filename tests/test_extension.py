"""Adding a label augmentation or a dataset is one entry in its registry and its config keys.

A scratch copy of this repository gets one new module in ``labaug/augment/`` (registered
through the public extension point, `labaug.augment.register`) and its grid and ResNet value
in ``config.yaml``, exactly as the README's "Adding a label augmentation" says. The smoke DAG
then runs it everywhere the registry says it applies, with no other edit: it is in every result
file and every figure, and the theory step says by name that it has no exact minimizer.

Likewise a new image dataset is one entry in ``labaug.data.raw.SPECS`` and its class pair and
source directory in ``config.yaml`` (README "Adding a dataset"): its raw files are verified and
read, and it runs through the binary-image sweeps and the class-channel runs into every image
figure.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml

from labaug.results import METHOD_DIM
from tests.archives import write_idx_files
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
    """Follow the README: the module, and its entries in config.yaml. Returns the files touched."""
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
    assert len(touched) <= 2       # the README's promise: its module and config.yaml (+ tests)
    work = tmp_path / "run"
    work.mkdir()
    write_overrides(work, SMALL)
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
    assert with_methods >= 6

    figures = work / "logs" / "figures"
    for name in ("fig1", "fig2", "fig3", "fig4", "fig6", "fig7"):
        assert "label_shift" in (figures / f"{name}.log").read_text(), name
        assert (work / "figures" / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"
    assert "label_shift" not in (figures / "theory.log").read_text()
    theory_log = (work / "logs" / "theory" / "synthetic_zero.log").read_text()
    assert "no population loss for label_shift" in theory_log


# A four-class MNIST-style dataset of 16 x 16 images: four idx files, read by the same parser
# as Fashion-MNIST. Its official digests are unknown placeholders; the test's config gives the
# generated files' digests through data_checksums, as a repackaged mirror would.
TOY_FILES = ("toy-train-images.gz", "toy-train-labels.gz", "toy-test-images.gz",
             "toy-test-labels.gz")
TOY_ENTRY = f'''    "toy": ArchiveSpec(
        "toy", "Toy shapes", 4,
        tuple(SourceFile(name, "https://example.invalid/toy/" + name, "0" * 64, "sha256",
                         decompressed=True) for name in {TOY_FILES!r}),
        idx_parser(*{TOY_FILES!r}, ("square", "circle", "cross", "ring")),
    ),
'''
SPECS_LINE = "SPECS: Mapping[str, ArchiveSpec] = MappingProxyType({\n"


def add_toy_dataset(repo: Path) -> list[Path]:
    """Follow the README: an entry in SPECS, and its pair and source in config.yaml."""
    raw = repo / "labaug" / "data" / "raw.py"
    text = raw.read_text()
    assert text.count(SPECS_LINE) == 1
    raw.write_text(text.replace(SPECS_LINE, SPECS_LINE + TOY_ENTRY))
    config_path = repo / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["image"]["pairs"]["toy"] = [1, 3]
    config["data_sources"]["toy"] = None
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    return [raw, config_path]


def write_toy_files(directory: Path, n_train: int = 400, n_test: int = 120) -> dict[str, str]:
    """The toy dataset's four gzipped idx files; returns their content sha256s."""
    rng = np.random.default_rng(0)
    directory.mkdir(parents=True)
    arrays = (rng.integers(0, 256, (n_train, 16, 16)), rng.integers(0, 4, n_train),
              rng.integers(0, 256, (n_test, 16, 16)), rng.integers(0, 4, n_test))
    return write_idx_files(directory, {name.removesuffix(".gz"): array.astype(np.uint8)
                                       for name, array in zip(TOY_FILES, arrays, strict=True)})


def test_a_new_dataset_reaches_every_image_result_and_figure(tmp_path: Path) -> None:
    repo = scratch_copy(tmp_path / "repo")
    touched = add_toy_dataset(repo)
    assert len(touched) <= 2       # the README's promise: its SPECS entry and config.yaml (+ tests)
    work = tmp_path / "run"
    work.mkdir()
    digests = write_toy_files(work / "sources" / "toy")
    overrides = write_overrides(work, {"seeds": [0], "image_datasets": ["toy"],
                                       "resnet": {"datasets": ["toy"]}})
    config = yaml.safe_load(overrides.read_text())
    config["data_sources"]["toy"] = str(work / "sources" / "toy")
    config["data_checksums"]["toy"] = digests
    overrides.write_text(yaml.safe_dump(config))
    figures = ("fig2", "fig3", "fig7", "fig4", "fig5")
    proc = snakemake(work, "--cores", "2", *(f"figures/{name}.pdf" for name in figures),
                     repo=repo)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]

    assert "toy: reading local source" in (work / "logs" / "data" / "fetch_toy.log").read_text()
    for path in ("results/linear/toy_zero.nc", "results/linear/toy_low.nc",
                 "results/resnet/toy.nc"):
        with xr.open_dataset(work / path) as ds:
            assert ds[METHOD_DIM].size >= 3, path
            assert ds["test_error"].notnull().all(), path
    with xr.open_dataset(work / "results" / "linear" / "toy_zero.nc") as ds:
        assert ds.attrs["class_pair"] == "circle vs ring"           # the configured pair [1, 3]
    for name in figures:
        assert (work / "figures" / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"
