"""The whole DAG on the smoke preset, in a temporary directory, checked against the contracts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import xarray as xr
import yaml

from tests.conftest import REPO

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
PROVENANCE = ("labaug_version", "git_commit", "config_sha256", "torch_version", "device",
              "created")


def smoke_overrides(workdir: Path) -> dict[str, Any]:
    """Extra config for the smoke run (data sources made in ``workdir``)."""
    return {}


def run_snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the repository's workflow in ``workdir`` on the smoke preset."""
    overrides = workdir / "overrides.yaml"
    if not overrides.exists():
        overrides.write_text(yaml.safe_dump(smoke_overrides(workdir)))
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--cores", "2",
           "--configfile", str(REPO / "presets" / "smoke.yaml"), str(overrides), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stderr[-6000:]}")
    return proc


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished smoke run of `rule all`."""
    workdir = tmp_path_factory.mktemp("smoke")
    run_snakemake(workdir)
    return workdir


@pytest.mark.slow
def test_every_figure_is_built(smoke: Path) -> None:
    for n in (1, 6):
        pdf = smoke / "figures" / f"fig{n}.pdf"
        assert pdf.read_bytes()[:5] == b"%PDF-"


@pytest.mark.slow
@pytest.mark.parametrize("variance", ["zero", "low"])
def test_synthetic_results_follow_the_contract(smoke: Path, variance: str) -> None:
    with xr.open_dataset(smoke / "results" / "linear" / f"synthetic_{variance}.nc") as ds:
        assert list(ds["method"].values) == ["weight_decay", "label_smoothing", "mixup"]
        assert dict(ds.sizes) == {"method": 3, "hp": 3, "seed": 2, "feature": 10}
        assert ds["hp_value"].dims == ("method", "hp")
        assert ds["hp_value"].sel({"method": "mixup"}).values.tolist() == [0.0, 0.5, 1.0]
        for name in ("w_high_norm", "test_error", "train_loss"):
            assert ds[name].dims == ("method", "hp", "seed")
            assert ds[name].attrs["long_name"]
        assert ds["weight"].dims == ("method", "hp", "seed", "feature")
        for key in PROVENANCE:
            assert key in ds.attrs, key
        assert ds.attrs["device"] == "cpu"
    with xr.open_dataset(smoke / "results" / "linear" / f"synthetic_{variance}" / "mixup"
                         / "seed1.nc") as job:
        assert job.attrs["seed"] == 1


@pytest.mark.slow
def test_every_rule_logged_and_benchmarked(smoke: Path) -> None:
    assert (smoke / "logs" / "linear" / "synthetic_zero" / "mixup" / "seed0.log").read_text()
    assert (smoke / "logs" / "benchmarks" / "linear" / "synthetic_zero" / "mixup"
            / "seed0.tsv").exists()


@pytest.mark.slow
def test_one_figure_builds_only_what_it_needs(tmp_path: Path) -> None:
    proc = run_snakemake(tmp_path, "-n", "figures/fig1.pdf")
    out = proc.stdout
    assert "synthetic_zero" in out
    assert "synthetic_low" not in out
    assert "fig6" not in out
