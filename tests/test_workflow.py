"""The whole DAG on the smoke preset, in a temporary directory, checked against the contracts."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from labaug.augment import for_experiment
from labaug.results import METHOD_DIM, MODEL_DIM, RESNET_VARIABLES
from tests.cluster.smoke import snakemake, write_overrides
from tests.conftest import merged_config

pytestmark = pytest.mark.slow

PROVENANCE = ("labaug_version", "git_commit", "config_sha256", "torch_version", "device",
              "device_name", "precision", "created")
SMOKE = merged_config("smoke")


def methods(experiment: str) -> list[str]:
    """The smoke preset's methods that the registry runs on ``experiment``, in config order."""
    return for_experiment(SMOKE["methods"], experiment)  # type: ignore[arg-type]


def test_every_figure_is_built(smoke_run: Path) -> None:
    for name in ("fig1", "fig2", "fig3", "fig4", "fig5", "fig6", "fig7", "fig8", "theory"):
        pdf = smoke_run / "figures" / f"{name}.pdf"
        assert pdf.read_bytes()[:5] == b"%PDF-", name


@pytest.mark.parametrize("variance", ["zero", "low"])
def test_synthetic_results_follow_the_contract(smoke_run: Path, variance: str) -> None:
    with xr.open_dataset(smoke_run / "results" / "linear" / f"synthetic_{variance}.nc") as ds:
        expected = methods("synthetic")
        assert list(ds[METHOD_DIM].values) == expected
        assert dict(ds.sizes) == {METHOD_DIM: len(expected), "grid": 3, "seed": 2,
                                  "feature": 10}
        assert ds["hp_value"].dims == (METHOD_DIM, "grid")
        for name in expected:
            grid = SMOKE["grids"][name]
            np.testing.assert_allclose(ds.sel(augmentation=name)["hp_value"].values,
                                       np.linspace(grid["low"], grid["high"], grid["size"]))
        for name in ("w_high_norm", "test_error", "train_loss"):
            assert ds[name].dims == (METHOD_DIM, "grid", "seed")
            assert ds[name].attrs["long_name"]
            assert np.all(np.isfinite(ds[name].values))
        assert ds["weight"].dims == (METHOD_DIM, "grid", "seed", "feature")
        # w_high_norm is the norm of the last d weights.
        np.testing.assert_allclose(
            ds["w_high_norm"].values,
            np.linalg.norm(ds["weight"].values[..., 5:], axis=-1), rtol=1e-12)
        for key in PROVENANCE:
            assert key in ds.attrs, key
        assert ds.attrs["device"] == "cpu"
    seed_file = (smoke_run / "results" / "linear" / f"synthetic_{variance}" / "mixup"
                 / "seed1.nc")
    with xr.open_dataset(seed_file) as job:
        assert job.attrs["seed"] == 1


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
def test_image_results_follow_the_contract(smoke_run: Path, dataset: str) -> None:
    with xr.open_dataset(smoke_run / "results" / "linear" / f"{dataset}_zero.nc") as ds:
        expected = methods("binary_images")
        assert list(ds[METHOD_DIM].values) == expected
        assert dict(ds.sizes) == {METHOD_DIM: len(expected), "grid": 3, "seed": 2,
                                  "feature": 3 * 32 * 32}
        for name in ("pixel_ratio", "test_error", "train_loss"):
            assert ds[name].dims == (METHOD_DIM, "grid", "seed")
            assert np.all(np.isfinite(ds[name].values))
        for key in PROVENANCE:
            assert key in ds.attrs, key


def test_resnet_results_follow_the_contract(smoke_run: Path) -> None:
    with xr.open_dataset(smoke_run / "results" / "resnet" / "cifar10.nc") as ds:
        expected = methods("class_channels")
        assert list(ds[METHOD_DIM].values) == expected
        assert list(ds[MODEL_DIM].values) == SMOKE["resnet"]["models"]
        assert dict(ds.sizes) == {MODEL_DIM: 1, METHOD_DIM: len(expected), "grid": 1, "seed": 2,
                                  "epoch": 2}
        assert ds["hp_value"].dims == (METHOD_DIM, "grid")
        for name in RESNET_VARIABLES:
            assert ds[name].dims == (MODEL_DIM, METHOD_DIM, "grid", "seed", "epoch")
            assert ds[name].attrs["long_name"]
        for key in PROVENANCE:
            assert key in ds.attrs, key


def test_every_result_file_selects_a_method_by_keyword(smoke_run: Path) -> None:
    files = sorted((smoke_run / "results").glob("*/*.nc"))
    assert len(files) >= 8
    for path in files:
        with xr.open_dataset(path) as ds:
            if METHOD_DIM not in ds.dims:
                continue    # the Fig. 5 example has no methods
            for name in ds[METHOD_DIM].values:
                one = ds.sel(augmentation=str(name))   # the natural spelling works
                assert METHOD_DIM not in one.dims, path


def test_every_job_logged_and_benchmarked(smoke_run: Path) -> None:
    log = (smoke_run / "logs" / "linear" / "synthetic_zero" / "mixup.log").read_text()
    assert "wrote" in log and re.search(r"timing: start-up [\d.]+ s .*training [\d.]+ s", log)
    assert (smoke_run / "logs" / "benchmarks" / "linear" / "synthetic_zero" / "mixup.tsv").exists()
    task = smoke_run / "logs" / "data" / "task_cifar10_pair0-1_low.log"
    assert "gamma 0.5; wrote" in task.read_text()


def test_a_finished_run_has_nothing_left_to_do(smoke_run: Path) -> None:
    proc = snakemake(smoke_run, "-n", "--cores", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Nothing to be done" in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("target", "needs", "not_needed"),
    [
        ("figures/fig1.pdf", ["synthetic_zero"], ["synthetic_low", "cifar", "resnet"]),
        ("figures/fig4.pdf", ["train_resnet", "cifar10"], ["linear_sweep", "theory"]),
    ],
)
def test_one_figure_builds_only_what_it_needs(tmp_path: Path, target: str, needs: list[str],
                                              not_needed: list[str]) -> None:
    write_overrides(tmp_path)
    proc = snakemake(tmp_path, "-n", "--cores", "1", target)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for word in needs:
        assert word in proc.stdout, word
    for word in not_needed:
        assert word not in proc.stdout, word
