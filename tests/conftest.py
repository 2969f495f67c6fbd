"""Shared fixtures: the repository root, the default config, and a small synthetic config."""

from __future__ import annotations

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
    """One finished `rule all` on the smoke preset (generated CIFAR archives), shared by tests."""
    from tests.cluster.smoke import snakemake, write_overrides

    workdir = tmp_path_factory.mktemp("smoke")
    write_overrides(workdir)
    proc = snakemake(workdir, "--cores", "2")
    if proc.returncode != 0:
        raise AssertionError(f"smoke run failed ({proc.returncode}):\n{proc.stderr[-6000:]}")
    return workdir
