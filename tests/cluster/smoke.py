"""Run the repository's workflow on the smoke preset in a scratch directory.

Raw image data comes from archives generated in the official on-disk layouts
(tests/archives.py), registered through ``data_sources`` and ``data_checksums``
so the workflow's own verification accepts them; nothing touches the network.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
IMAGE_DATASETS = ("cifar10", "cifar100")

# Layered on the smoke preset where a test needs the whole DAG but not its full width:
# one seed and one image dataset keep every rule and figure in the DAG.
SMALL: dict[str, Any] = {
    "seeds": [0],
    "image_datasets": ["cifar10"],
    "resnet": {"datasets": ["cifar10"]},
}


def generated_sources(workdir: Path, datasets: Sequence[str] = IMAGE_DATASETS) -> dict[str, Any]:
    """Write small raw archives under ``workdir/sources``; return the config pointing at them."""
    from tests.archives import WRITERS, spec_for

    sources: dict[str, Any] = {}
    checksums: dict[str, Any] = {}
    for dataset in datasets:
        directory = workdir / "sources" / dataset
        directory.mkdir(parents=True, exist_ok=True)
        WRITERS[dataset](directory)
        spec = spec_for(dataset, directory)
        sources[dataset] = str(directory)
        checksums[dataset] = {f.name: f.digest for f in spec.files}
    return {"data_sources": sources, "data_checksums": checksums, "allow_download": False}


def write_overrides(workdir: Path, extra: Mapping[str, Any] | None = None) -> Path:
    """``workdir/overrides.yaml``: generated data sources, output_root ".", plus ``extra``;
    returns its path."""
    path = workdir / "overrides.yaml"
    config = generated_sources(workdir, datasets=IMAGE_DATASETS)
    # Each test has a scratch directory of its own: results/, figures/, ... at its top, not
    # under the smoke preset's runs/smoke/.
    config["output_root"] = "."
    config.update(extra or {})
    path.write_text(yaml.safe_dump(config))
    return path


def command(workdir: Path, *args: str, repo: Path = REPO,
            configs: Sequence[Path] = ()) -> list[str]:
    """The snakemake command line for ``workdir`` (smoke preset + its overrides.yaml + ``configs``),
    running the workflow of ``repo`` (this checkout by default); ``args`` (options, targets)
    come first, so targets never follow --configfile."""
    overrides = workdir / "overrides.yaml"
    if not overrides.exists():
        write_overrides(workdir)
    return [SNAKEMAKE, *args, "-s", str(repo / "Snakefile"), "-d", str(workdir),
            "--configfile", str(repo / "presets" / "smoke.yaml"), str(overrides),
            *(str(c) for c in configs)]


def snakemake(workdir: Path, *args: str, env: Mapping[str, str] | None = None,
              timeout: float = 900, repo: Path = REPO,
              configs: Sequence[Path] = ()) -> subprocess.CompletedProcess[str]:
    """Run the workflow of ``repo`` in ``workdir`` on the smoke preset plus its overrides (and
    ``configs`` layered last)."""
    cmd = command(workdir, *args, repo=repo, configs=configs)
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env=dict(env) if env is not None else None)
    n = len(list(workdir.glob("snakemake-*.out"))) + 1
    (workdir / f"snakemake-{n}.out").write_text(
        f"$ {' '.join(cmd)}\n# {time.monotonic() - start:.1f} s, exit {proc.returncode}\n"
        + proc.stdout + proc.stderr)
    return proc


def expected_figures(workdir: Path) -> set[str]:
    """Every figure ``rule all`` builds for the run configured in ``workdir`` (a dry run)."""
    proc = snakemake(workdir, "-n", "--forceall", "--cores", "1", timeout=120)
    if proc.returncode != 0:
        raise AssertionError(proc.stdout + proc.stderr)
    return set(re.findall(r"figures/\w+\.pdf", proc.stdout))
