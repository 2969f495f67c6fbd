"""The DAG tracks what was asked: a config edit reruns exactly the jobs that depend on it, and
each preset writes under its own output root (dry runs on the finished smoke run)."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from labaug.augment import for_experiment
from tests.cluster.smoke import REPO, SNAKEMAKE, snakemake
from tests.conftest import PRESETS, merged_config

pytestmark = pytest.mark.slow

SMOKE = merged_config("smoke")
Job = tuple[str, str]   # (rule, first output)


def planned(workdir: Path, edit: dict[str, Any] | None = None,
            tmp: Path | None = None, *targets: str) -> tuple[set[Job], str]:
    """The jobs a dry run in ``workdir`` lists after layering ``edit`` on its config, and the
    dry run's output."""
    configs = []
    if edit is not None:
        assert tmp is not None
        path = tmp / "edit.yaml"
        path.write_text(yaml.safe_dump(edit))
        configs.append(path)
    proc = snakemake(workdir, "-n", "--cores", "1", *targets, configs=configs, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    jobs = set(re.findall(r"^(?:local)?rule (\w+):\n(?:    .*\n)*?    output: ([^,\n]+)",
                          proc.stdout, flags=re.M))
    return {(rule, output) for rule, output in jobs if rule != "all"}, out


def methods(experiment: str) -> list[str]:
    """The smoke run's methods of ``experiment``."""
    return for_experiment(SMOKE["methods"], experiment)


def linear_jobs(data: list[str], variances: list[str]) -> set[Job]:
    """Every linear sweep job of these data and variants (one per method: all its seeds; the
    dry run lists a job's first output, its first seed's file)."""
    first = SMOKE["seeds"][0]
    return {("linear_sweep", f"results/linear/{d}_{v}/{m}/seed{first}.nc")
            for d in data for v in variances
            for m in methods("synthetic" if d == "synthetic" else "binary_images")}


def task_jobs(data: list[str], variances: list[str]) -> set[Job]:
    """The standardized image tasks of these datasets and variants (their configured pairs)."""
    pairs = SMOKE["image"]["pairs"]
    return {("binary_task", f"data/tasks/{d}_pair{pairs[d][0]}-{pairs[d][1]}_{v}.npz")
            for d in data for v in variances if d != "synthetic"}


def downstream(data: list[str], variances: list[str], figures: list[str],
               theory: tuple[str, ...] = ()) -> set[Job]:
    """Aggregates, theory, figures and summary that follow from these linear jobs."""
    return ({("aggregate_linear", f"results/linear/{d}_{v}.nc") for d in data for v in variances}
            | {("theory", f"results/theory/synthetic_{v}.nc") for v in theory}
            | {("figure", f"figures/{f}.pdf") for f in figures}
            | {("summary", "results/summary.md")})


IMAGES = list(SMOKE["image_datasets"])


def resnet_jobs(seeds: list[int]) -> set[Job]:
    """The class-channel runs of these seeds (the smoke preset's one model and values)."""
    return {("train_resnet", f"results/resnet/cifar10/resnet18/{m}/grid0/seed{s}.nc")
            for m in methods("class_channels") for s in seeds}


RESNET: set[Job] = (resnet_jobs(SMOKE["seeds"])
                    | {("aggregate_resnet", "results/resnet/cifar10.nc"),
                       ("figure", "figures/fig4.pdf"), ("figure", "figures/fig8.pdf"),
                       ("summary", "results/summary.md")})

# (edit, the jobs it must rerun: exactly these)
EDITS: dict[str, tuple[dict[str, Any], Callable[[], set[Job]]]] = {
    "synthetic.gamma": ({"synthetic": {"gamma": 0.6}}, lambda: (
        linear_jobs(["synthetic"], ["zero", "low"])
        | downstream(["synthetic"], ["zero", "low"], ["fig1", "fig6", "theory"],
                     theory=("zero", "low")))),
    "image.gamma": ({"image": {"gamma": 0.4}}, lambda: (
        task_jobs(IMAGES, ["zero", "low"]) | linear_jobs(IMAGES, ["zero", "low"])
        | downstream(IMAGES, ["zero", "low"], ["fig2", "fig3", "fig7"]))),
    # The smoke preset sets resnet.epochs, so optim.epochs reaches only the linear sweeps.
    "optim.epochs": ({"optim": {"epochs": 4}}, lambda: (
        linear_jobs(["synthetic", *IMAGES], ["zero", "low"])
        | downstream(["synthetic", *IMAGES], ["zero", "low"],
                     ["fig1", "fig6", "theory", "fig2", "fig3", "fig7"]))),
    "low_noise": ({"low_noise": 0.2}, lambda: (
        task_jobs(IMAGES, ["low"]) | linear_jobs(["synthetic", *IMAGES], ["low"])
        | downstream(["synthetic", *IMAGES], ["low"], ["fig6", "fig7", "theory"],
                     theory=("low",)))),
    "resnet.width": ({"resnet": {"width": 3}}, lambda: RESNET),
    # How a run goes, not what it computes: nothing reruns.
    "resnet.checkpoint_minutes": ({"resnet": {"checkpoint_minutes": 5}}, set),
    # The same value written another way is the same config: nothing reruns.
    "optim.batch_size": ({"optim": {"batch_size": 100.0}, "seeds": [0.0, 1.0]}, set),
    # A new seed: its own class-channel runs, no binary task; the sweep jobs (one per method,
    # every seed) rerun and find their old seeds finished (labaug.jobs.linear_job).
    "seeds": ({"seeds": [0, 1, 2]}, lambda: (
        resnet_jobs([2]) | linear_jobs(["synthetic", *IMAGES], ["zero", "low"])
        | downstream(["synthetic", *IMAGES], ["zero", "low"],
                     ["fig1", "fig6", "theory", "fig2", "fig3", "fig7", "fig4", "fig8"])
        | {("aggregate_resnet", "results/resnet/cifar10.nc")})),
}


@pytest.mark.parametrize("key", list(EDITS))
def test_a_config_edit_reruns_exactly_the_jobs_that_depend_on_it(
        smoke_run: Path, tmp_path: Path, key: str) -> None:
    edit, expected = EDITS[key]
    jobs, out = planned(smoke_run, edit, tmp_path)
    want = expected()
    assert jobs == want, (f"{key}: extra {sorted(jobs - want)[:5]}, "
                          f"missing {sorted(want - jobs)[:5]}")
    if not want:
        assert "Nothing to be done" in out
        return
    if key == "seeds":
        # Planned for the new seed's missing files; no old run is said to have changed.
        assert "Params have changed" not in out.replace("'seeds'", "")
        assert "Missing output files" in out
        return
    # The training jobs say why: their config slice changed, old and new value shown.
    leaf = key.split(".")[-1]
    reasons = re.findall(r"reason: Params have changed since last execution: (.*)", out)
    assert reasons and all(f"'{leaf}'" in r for r in reasons), reasons[:1]


def test_each_preset_writes_under_its_own_root(tmp_path: Path) -> None:
    for preset in PRESETS:
        root = yaml.safe_load((REPO / "presets" / f"{preset}.yaml").read_text())["output_root"]
        assert root == f"runs/{preset}"
        workdir = tmp_path / preset
        workdir.mkdir()
        proc = subprocess.run([SNAKEMAKE, "-n", "--cores", "1", "-s", str(REPO / "Snakefile"),
                               "-d", str(workdir), "--configfile",
                               str(REPO / "presets" / f"{preset}.yaml")],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        outputs = re.findall(r"^    output: (.*)$", proc.stdout, flags=re.M)
        files = [f for line in outputs for f in line.split(", ")]
        assert files and all(f.startswith(f"{root}/") for f in files), [
            f for f in files if not f.startswith(root)][:5]


def test_another_output_root_reuses_no_result(smoke_run: Path, tmp_path: Path) -> None:
    # Same directory, same config, another root: every job is planned again under that root,
    # none is satisfied by the results/ of the finished run.
    jobs, _ = planned(smoke_run, {"output_root": "runs/other"}, tmp_path)
    every, _ = planned(smoke_run, None, None, "--forceall")
    assert {rule for rule, _ in jobs} == {rule for rule, _ in every}
    assert all(output.startswith("runs/other/") for _, output in jobs)
    assert len(jobs) == len(every)


def test_moved_raw_files_rerun_their_readers_unless_touched(smoke_run: Path,
                                                            tmp_path: Path) -> None:
    # docs/running.md, "What reruns": a new source directory rebuilds the raw npz and
    # so reruns every job that reads it; when the move is the only change, `--touch` records it
    # and nothing is retrained. On a copy: touching rewrites the run's metadata.
    work = tmp_path / "copy"
    shutil.copytree(smoke_run, work, symlinks=True)
    moved = tmp_path / "moved" / "cifar100"
    shutil.copytree(smoke_run / "sources" / "cifar100", moved)
    edit = {"data_sources": {"cifar100": str(moved)}}
    jobs, _ = planned(work, edit, tmp_path)
    assert ("fetch_raw", "data/raw/cifar100.npz") in jobs
    assert task_jobs(["cifar100"], ["zero", "low"]) <= jobs
    assert linear_jobs(["cifar100"], ["zero", "low"]) <= jobs
    proc = snakemake(work, "--touch", "--cores", "1", configs=[tmp_path / "edit.yaml"])
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    jobs, out = planned(work, edit, tmp_path)
    assert jobs == set() and "Nothing to be done" in out, sorted(jobs)[:5]
