"""Shared fixtures: the repository root, the default config, and a small synthetic config; and
how the suite is spread over pytest-xdist's workers (`make test` runs ``pytest -n auto``)."""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]

# Every shipped preset (presets/NAME.yaml), by name.
PRESETS = sorted(p.stem for p in (REPO / "presets").glob("*.yaml"))

# The suite runs on small CPUs; one thread keeps timings stable and numbers reproducible.
torch.set_num_threads(1)


def load_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML file into a dict."""
    with open(path) as fh:
        data: dict[str, Any] = yaml.safe_load(fh)
    return data


def merged_config(*presets: str) -> dict[str, Any]:
    """config.yaml with presets layered on top, merged the way Snakemake merges configfiles."""
    config = load_yaml(REPO / "config.yaml")

    def update(base: dict[str, Any], new: dict[str, Any]) -> None:
        for key, value in new.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                update(base[key], value)
            else:
                base[key] = value

    for name in presets:
        update(config, load_yaml(REPO / "presets" / f"{name}.yaml"))
    return config


@pytest.fixture
def repo() -> Path:
    """The repository root."""
    return REPO


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished `rule all` on the smoke preset (generated CIFAR archives), shared by tests:
    built once per suite, also when pytest-xdist runs the suite in several worker processes
    (the first worker that needs it builds it under a lock; the others wait, then reuse it)."""
    from tests.cluster.smoke import snakemake, write_overrides

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent    # the folder all workers of this run share
    workdir, done = base / "smoke_run", base / "smoke_run.done"
    with open(base / "smoke_run.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(workdir, ignore_errors=True)
            workdir.mkdir()
            write_overrides(workdir)
            proc = snakemake(workdir, "--cores", "2")
            if proc.returncode != 0:
                raise AssertionError(f"smoke run failed ({proc.returncode}):\n"
                                     f"{proc.stderr[-6000:]}")
            done.touch()
    return workdir


# The modules that take longest, started first so that no worker is left with one of them at the
# end (serially on a 2-core CPU: SLURM 150 s, the extension and dataset tests 90-110 s); the
# image test builds the shared smoke run early, while the SLURM test mostly waits on its cluster.
SLOW_FIRST = ("test_slurm", "test_binary_images", "test_extension", "test_datasets",
              "test_failures", "test_gpu_checks", "test_devices", "test_integrity")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Slow modules first (`make test` runs ``pytest -n auto --dist loadfile``: each module on
    one worker, so that module fixtures such as the SLURM cluster are built once)."""
    def rank(item: pytest.Item) -> int:
        name = item.nodeid.split("::")[0].rsplit("/", 1)[-1].removesuffix(".py")
        return SLOW_FIRST.index(name) if name in SLOW_FIRST else len(SLOW_FIRST)

    items.sort(key=rank)    # stable: within a rank, collection order
