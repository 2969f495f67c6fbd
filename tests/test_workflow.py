"""The whole DAG on the smoke preset, in a temporary directory, checked against the contracts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from tests.cluster.smoke import snakemake, write_overrides

pytestmark = pytest.mark.slow

PROVENANCE = ("labaug_version", "git_commit", "config_sha256", "torch_version", "device",
              "created")
METHODS = ["weight_decay", "label_smoothing", "mixup"]


def test_every_figure_is_built(smoke_run: Path) -> None:
    for name in ("fig1", "fig2", "fig3", "fig4", "fig5", "fig6", "fig7", "theory"):
        pdf = smoke_run / "figures" / f"{name}.pdf"
        assert pdf.read_bytes()[:5] == b"%PDF-", name


@pytest.mark.parametrize("variance", ["zero", "low"])
def test_synthetic_results_follow_the_contract(smoke_run: Path, variance: str) -> None:
    with xr.open_dataset(smoke_run / "results" / "linear" / f"synthetic_{variance}.nc") as ds:
        assert list(ds["method"].values) == METHODS
        assert dict(ds.sizes) == {"method": 3, "hp": 3, "seed": 2, "feature": 10}
        assert ds["hp_value"].dims == ("method", "hp")
        assert ds["hp_value"].sel({"method": "mixup"}).values.tolist() == [0.0, 0.5, 1.0]
        for name in ("w_high_norm", "test_error", "train_loss"):
            assert ds[name].dims == ("method", "hp", "seed")
            assert ds[name].attrs["long_name"]
            assert np.all(np.isfinite(ds[name].values))
        assert ds["weight"].dims == ("method", "hp", "seed", "feature")
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
        assert dict(ds.sizes) == {"method": 3, "hp": 3, "seed": 2, "feature": 3 * 32 * 32}
        for name in ("pixel_ratio", "test_error", "train_loss"):
            assert ds[name].dims == ("method", "hp", "seed")
        for key in PROVENANCE:
            assert key in ds.attrs, key


def test_resnet_results_follow_the_contract(smoke_run: Path) -> None:
    with xr.open_dataset(smoke_run / "results" / "resnet" / "cifar10.nc") as ds:
        assert dict(ds.sizes) == {"method": 3, "seed": 2, "epoch": 2}
        for name in ("test_error", "train_loss", "train_error"):
            assert ds[name].dims == ("method", "seed", "epoch")
            assert ds[name].attrs["long_name"]
        for key in PROVENANCE:
            assert key in ds.attrs, key


def test_every_job_logged_and_benchmarked(smoke_run: Path) -> None:
    log = smoke_run / "logs" / "linear" / "synthetic_zero" / "mixup" / "seed0.log"
    assert "wrote" in log.read_text()
    assert (smoke_run / "logs" / "benchmarks" / "linear" / "synthetic_zero" / "mixup"
            / "seed0.tsv").exists()


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
