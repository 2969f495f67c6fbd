"""benchmarks/gpu_checks.py and its modules (gpu_bundle, gpu_run, gpu_report): the offline
bundle's contents, and its steps run end to end on the CPU with a toy preset (the GPU itself is
checked by the tests marked `gpu`, where there is one)."""

from __future__ import annotations

import contextlib
import importlib.metadata as metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from labaug import datasets
from labaug.config import defaults

from .conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import gpu_bundle  # noqa: E402
import gpu_checks  # noqa: E402
import gpu_report  # noqa: E402
import gpu_run  # noqa: E402

sys.path.remove(str(REPO / "benchmarks"))


def test_bundle_holds_the_workflow_packages_at_their_installed_versions() -> None:
    found = gpu_bundle.requirement_closure(gpu_bundle.BUNDLE_ROOTS)
    for name in ("snakemake", "netcdf4", "cftime", "jsonschema", "yte",
                 "snakemake-interface-common"):
        assert found[name] == metadata.version(name)
    # PyTorch's stack is the GPU machine's own; pulp is optional (greedy scheduling).
    assert not {"numpy", "torch", "pulp"} & set(found)


def test_only_missing_or_older_distributions_are_installed(tmp_path: Path) -> None:
    have = tmp_path / f"pytest-{metadata.version('pytest')}-py3-none-any.whl"
    older = tmp_path / "pytest-0.1-py3-none-any.whl"
    newer = tmp_path / "pytest-999.0-py3-none-any.whl"
    lack = tmp_path / "labaug_no_such_distribution-1.0-py3-none-any.whl"
    assert gpu_bundle.needed_wheels([have, older, newer, lack]) == [newer, lack]
    assert gpu_bundle.wheel_distribution(lack) == ("labaug-no-such-distribution", "1.0")


def test_bundled_data_are_the_official_files(tmp_path: Path) -> None:
    source = Path(yaml.safe_load((REPO / "config.yaml").read_text())["data_sources"]["fmnist"])
    if not source.is_dir():
        pytest.skip(f"needs Debian's dataset-fashion-mnist in {source} (make system-test)")
    gpu_bundle.copy_dataset("fmnist", tmp_path / "fmnist")
    names = sorted(p.name for p in (tmp_path / "fmnist").iterdir())
    assert names == sorted(f.name for f in datasets.builtin()["fmnist"].files)
    with pytest.raises(FileNotFoundError, match="data_sources.cifar10"):
        gpu_bundle.copy_dataset("cifar10", tmp_path / "cifar10")


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status


def test_a_step_that_hangs_is_stopped_with_what_it_started(tmp_path: Path) -> None:
    # The benchmark's concurrent runs are processes of its own: a timeout must stop them too,
    # or they would hold the GPU while the full runs train.
    pid_file, log = tmp_path / "child.pid", tmp_path / "step.log"
    rc = gpu_run.logged(["sh", "-c", f"sleep 60 & echo $! > {pid_file}; sleep 60"], log,
                           dict(os.environ), timeout=1)
    assert rc == 124 and "stopped after 1 s" in log.read_text()
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child)


@pytest.fixture
def toy_preset(tmp_path: Path) -> Iterator[Path]:
    """A preset training two methods' class-channel runs for 2 epochs on 300 images, CPU.

    `run` works in the checkout, as it does on a GPU machine: what it adds there beside its
    output root (the shared data/raw/fmnist.npz, Snakemake's .snakemake/) is removed afterwards
    unless it was there before."""
    shared = [REPO / "data" / "raw" / "fmnist.npz", REPO / "data" / "raw", REPO / "data",
              REPO / ".snakemake"]
    before = {path for path in shared if path.exists()}
    root = f"runs/test-gpu-checks-{uuid.uuid4().hex[:8]}"
    preset = tmp_path / "toy.yaml"
    preset.write_text(yaml.safe_dump({
        "output_root": root, "seeds": [0], "methods": ["weight_decay", "mixup"],
        "resnet": {"datasets": ["fmnist"], "device": "cpu", "width": 2, "train_subset": 300,
                   "test_subset": 100, "batch_size": 100, "epochs": 2, "runs_per_gpu": 4}}))
    yield preset
    shutil.rmtree(REPO / root, ignore_errors=True)
    for path in shared:
        if path in before:
            continue
        if path.is_dir() and path.name == ".snakemake":
            shutil.rmtree(path, ignore_errors=True)
        elif path.is_dir():
            with contextlib.suppress(OSError):
                path.rmdir()        # only if the test left it empty
        else:
            path.unlink(missing_ok=True)


def test_run_collects_benchmark_runs_and_report_on_the_cpu(toy_preset: Path,
                                                           tmp_path: Path) -> None:
    out = tmp_path / "out"
    rc = gpu_checks.main([
        "run", str(out), "--preset", str(toy_preset), "--skip", "tests",
        "--targets", "figures/fig4.pdf",
        "--benchmark-args", "--device cpu --width 2 --images 200 --batch-size 100 --epochs 1"])
    assert rc == 0, (out / "snakemake.log").read_text()
    assert {p.name for p in out.iterdir()} == {"environment.json", "benchmark.log",
                                               "benchmark.json", "snakemake.log",
                                               "full_runs.tar.gz"}
    with tarfile.open(out / "full_runs.tar.gz") as tar:
        names = tar.getnames()
    assert "figures/fig4.pdf" in names and "results/resnet/fmnist.nc" in names
    assert not any(n.startswith("checkpoints") for n in names)

    text = gpu_report.report([out])
    assert "| labaug trainer (fp32) |" in text and "| naive (DataLoader" in text
    for method in ("weight_decay", "mixup"):
        run = f"fmnist resnet18 {method} grid0 seed0"
        assert f"| {run} | 2/2 |" in text
        # the diagnosis's share of an epoch, lowest test error (its epoch), final test error,
        # final train error
        row = next(ln for ln in text.splitlines() if ln.startswith(f"| {run} |"))
        assert re.search(r"\| \d+\.\d%( \| \d\.\d{4}){1} \([12]\) \| \d\.\d{4} \| \d\.\d{4} \|$",
                         row), row
    assert "| 2 | " in text.split("Test error by epoch:")[1]
    # The class-channel table of the aggregated result, one row per method.
    table = text.split("Class channels, fmnist, from `results/resnet/fmnist.nc`:")[1]
    assert all(f"| ResNet-18 | {label} |" in table for label in (
        "Weight decay (lambda = 0.0005)", "Mixup (alpha = 1)")), table
    assert "Label smoothing" not in table      # only the preset's methods

    # A second `run` while the first one's Snakemake still trains is refused, naming it.
    root = REPO / yaml.safe_load(toy_preset.read_text())["output_root"]
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        (root / "snakemake.rc").unlink()
        (root / "snakemake.pid").write_text(f"{sleeper.pid}\n")
        with pytest.raises(RuntimeError, match=f"still training \\(pid {sleeper.pid}\\)"):
            gpu_checks.main(["run", str(tmp_path / "again"), "--preset", str(toy_preset)])
    finally:
        sleeper.kill()
        sleeper.wait()

    # A run cut off after its first epoch (no benchmark file yet) reads as unfinished.
    partial = tmp_path / "partial"
    with tarfile.open(out / "full_runs.tar.gz") as tar:
        tar.extractall(partial, filter="data")
    log = next(partial.glob("logs/resnet/fmnist/resnet18/mixup/grid0/seed0.attempts.log"))
    log.write_text("".join(ln for ln in log.read_text().splitlines(keepends=True)
                           if "epoch 2/2" not in ln))
    shutil.rmtree(partial / "logs" / "benchmarks")
    # ... and without the aggregated file (the runs were not all done), the class-channel table
    # comes from the per-run files that were.
    (partial / "results" / "resnet" / "fmnist.nc").unlink()
    (partial / "results" / "resnet" / "fmnist" / "resnet18" / "mixup" / "grid0"
     / "seed0.nc").unlink()
    rows = "\n".join(gpu_report.full_run_tables(partial, every=10))
    assert "| fmnist resnet18 mixup grid0 seed0 | 1/2 | unfinished |" in rows
    mixup = next(ln for ln in rows.splitlines()
                 if ln.startswith("| fmnist resnet18 mixup grid0 seed0 |"))
    assert re.search(r"\| (\d\.\d{4}) \(1\) \| \1 \| \d\.\d{4} \|$", mixup), mixup
    assert "| fmnist resnet18 weight_decay grid0 seed0 | 2/2 | unfinished |" in rows
    assert "1 finished runs under `results/resnet/fmnist/` (not all runs finished" in rows
    table = rows.split("not all runs finished")[1]
    assert "Mixup" not in table and "| ResNet-18 | Weight decay (lambda = 0.0005) | 0." in table


def test_a_failed_benchmark_stage_keeps_the_numbers_around_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The benchmark runs once on a lent GPU: one stage failing (torch.compile, a concurrent
    # run out of memory) must not lose what was measured, and must not hang.
    # On sys.path while it runs: its concurrent runs are spawned processes that import it.
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import resnet_throughput

    with pytest.raises(RuntimeError, match=r"a benchmark process failed \(exit code 1\)"):
        # Workers that cannot start (there is no GPU 999) are noticed within a second, not
        # after an hour-long wait for their results.
        resnet_throughput.concurrent_img_s(
            {"threads": 1, "images": 100, "shape": (1, 8, 8), "classes": 2, "batch_size": 50,
             "width": 2, "device": "cuda:999", "precision": "fp32", "epochs": 1}, 2)

    def out_of_memory(args: dict[str, object], runs: int) -> float:
        if runs == 2:
            raise RuntimeError("CUDA out of memory (pretend)")
        return 123.0

    monkeypatch.setattr(resnet_throughput, "concurrent_img_s", out_of_memory)
    path = tmp_path / "bench.json"
    out = resnet_throughput.main(["--device", "cpu", "--width", "2", "--images", "100",
                                  "--batch-size", "50", "--epochs", "1", "--shape", "1", "8",
                                  "8", "--runs-per-gpu", "1", "2", "4", "--json", str(path)])
    saved = json.loads(path.read_text())
    assert saved["trainer_img_s"] == out["trainer_img_s"] > 0
    assert saved["runs_per_gpu_img_s"] == {"1": 123.0, "4": 123.0}
    assert saved["errors"] == {"2 concurrent runs": "RuntimeError: CUDA out of memory (pretend)"}
    table = "\n".join(gpu_report.benchmark_table(saved))
    assert "| 2 concurrent runs | failed: RuntimeError: CUDA out of memory (pretend) | |" in table
    assert "| 4 labaug runs at once, in total | 123 |" in table


def test_the_compile_cost_line_says_when_compiling_pays_back(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # resnet.compile's default rests on this line: compiling 10 s longer to save
    # 1/50,000 - 1/100,000 s an image pays back after 1,000,000 images (20 epochs).
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import resnet_throughput

    line = resnet_throughput.compile_cost(2.0, 12.0, 50_000.0, 100_000.0)
    assert line == ("compilation: warm-up epoch 12.0 s compiled, 2.0 s eager (+10.0 s); paid "
                    "back after 1,000,000 training images (20.0 epochs of 50,000)")
    slower = resnet_throughput.compile_cost(2.0, 12.0, 50_000.0, 45_000.0)
    assert slower.endswith("; never paid back (the compiled steps are no faster)")
    table = gpu_report.benchmark_table(
        {"shape": [3, 32, 32], "width": 64, "batch_size": 500, "images": 10, "epochs": 1,
         "precision": "bf16", "trainer_img_s": 50_000.0, "naive_img_s": 25_000.0,
         "ratio": 2.0, "compiled_img_s": 45_000.0, "train_flops_per_image": 3.3e9,
         "fraction_of_bf16_peak": 0.1, "compile_cost": slower})
    assert table[-1] == f"torch.compile: {slower}."


def test_the_naive_pipeline_runs_with_pytorchs_default_cudnn_settings(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The trainer, measured first in the same process, switches cuDNN autotuning on for good;
    # the naive pipeline must not inherit it (it would flatter the baseline on a GPU).
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import resnet_throughput

    seen: list[bool] = []
    build = resnet_throughput.resnet18

    def recording(*args: Any, **kwargs: Any) -> Any:
        seen.append(torch.backends.cudnn.benchmark)
        return build(*args, **kwargs)

    monkeypatch.setattr(resnet_throughput, "resnet18", recording)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    data = resnet_throughput.generated(40, (1, 8, 8), 2)
    optim = replace(defaults().optim, batch_size=20)
    assert resnet_throughput.naive_img_s(data, optim, 2, "cpu", 1) > 0
    assert seen == [False]
    assert torch.backends.cudnn.benchmark is True    # restored for whatever runs next
