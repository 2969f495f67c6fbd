"""Failure handling through the workflow: killed jobs resume, bad archives are refused,
an injected NaN fails only its job, and no result file is ever half-written."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from labaug.augment import for_experiment
from labaug.io import atomic_path, write_atomic
from labaug.results import RESNET_VARIABLES, write_netcdf
from tests.cluster.smoke import SMALL, command, snakemake, write_overrides
from tests.conftest import merged_config

RUN = "resnet/cifar10/resnet18/weight_decay/grid0/seed0"
RESNET_RUN = f"results/{RUN}.nc"
CHECKPOINT = f"checkpoints/{RUN}.pt"
LOG = f"logs/{RUN}.log"
# Long enough that a kill after the first checkpoint lands mid-run.
EPOCHS = 10
# checkpoint_minutes = 0: a checkpoint after every epoch, so there is one to resume mid-run.
RESUME = {**SMALL, "resnet": {**SMALL["resnet"], "width": 8, "epochs": EPOCHS,
                              "checkpoint_minutes": 0}}


def _children_running(workdir: Path, script: str) -> list[int]:
    """Pids of processes running ``script`` of the workflow in ``workdir`` (its job scripts)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(workdir) in cmdline and script in cmdline and "snakemake" not in cmdline.split()[0]:
            pids.append(int(entry.name))
    return pids


def _unexpected_files(results: Path) -> list[Path]:
    """Temporary or hidden files under ``results`` (what a half-finished write would leave)."""
    return [p for p in results.rglob("*") if p.is_file() and (p.name.startswith(".")
                                                            or ".tmp" in p.name)]


def _run_args(target: str) -> tuple[str, ...]:
    return ("--cores", "2", target)


@pytest.mark.slow
def test_killed_training_job_resumes_and_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    for workdir in (killed, clean):
        workdir.mkdir()
        write_overrides(workdir, RESUME)

    cmd = _run_args(RESNET_RUN)
    argv = command(killed, *cmd)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    checkpoint = killed / CHECKPOINT
    victims: list[int] = []
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        if checkpoint.exists():
            victims = _children_running(killed, "train_resnet.py")
            if victims:
                for pid in victims:
                    os.kill(pid, signal.SIGKILL)
                break
        time.sleep(0.02)
    out, _ = proc.communicate(timeout=300)
    assert victims, f"never saw a checkpoint with the job still running:\n{out[-3000:]}"
    assert proc.returncode != 0, out[-3000:]
    assert not (killed / RESNET_RUN).exists(), "the killed job still produced its result"
    assert not _unexpected_files(killed / "results")
    log = killed / LOG
    done = [int(m) for m in re.findall(rf"epoch (\d+)/{EPOCHS}", log.read_text())]
    assert done and max(done) < EPOCHS, log.read_text()

    # The same command again: the job resumes from its checkpoint and finishes.
    again = snakemake(killed, *cmd)
    assert again.returncode == 0, again.stderr[-4000:]
    text = log.read_text()
    resumed = re.search(r"resumed from \S+ after epoch (\d+)", text)
    assert resumed and int(resumed.group(1)) >= 1, text
    assert f"epoch {int(resumed.group(1)) + 1}/{EPOCHS}" in text
    # The finished run keeps only its final state (metrics, no weights) in the checkpoint.
    assert "trainer" not in torch.load(checkpoint, weights_only=True)

    uninterrupted = snakemake(clean, *cmd)
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-4000:]
    with xr.open_dataset(killed / RESNET_RUN) as a, xr.open_dataset(clean / RESNET_RUN) as b:
        assert set(a.data_vars) == set(b.data_vars) == set(RESNET_VARIABLES)
        for name in a.data_vars:
            np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
        assert a.sizes["epoch"] == EPOCHS


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated", "corrupted"])
def test_bad_raw_archive_is_refused_then_replacing_it_works(tmp_path: Path, damage: str) -> None:
    write_overrides(tmp_path, SMALL)
    archive = tmp_path / "sources" / "cifar10" / "cifar-10-python.tar.gz"
    good = archive.read_bytes()
    shutil.copy(archive, tmp_path / "good.tar.gz")
    if damage == "truncated":
        archive.write_bytes(good[: len(good) // 2])
    else:
        flipped = bytearray(good)
        flipped[len(flipped) // 2] ^= 0xFF
        archive.write_bytes(bytes(flipped))

    target = "data/raw/cifar10.npz"
    refused = snakemake(tmp_path, "--cores", "1", target)
    out = refused.stdout + refused.stderr
    assert refused.returncode != 0, out[-3000:]
    assert re.search(r"labaug\.[\w.]*(RawData|Checksum)Error: \S*cifar-10-python\.tar\.gz",
                     out), out[-3000:]
    assert re.search(r"corrupt|truncated|checksum|md5", out, flags=re.IGNORECASE), out[-3000:]
    raw_dir = tmp_path / "data" / "raw"
    assert not raw_dir.exists() or not any(raw_dir.iterdir()), list(raw_dir.iterdir())

    shutil.copy(tmp_path / "good.tar.gz", archive)
    fixed = snakemake(tmp_path, "--cores", "1", target)
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    with np.load(tmp_path / target) as npz:
        assert npz["x_train"].dtype == np.uint8 and npz["x_train"].shape[1:] == (3, 32, 32)
    assert sorted(p.name for p in raw_dir.iterdir()) == ["cifar10.npz"]


@pytest.mark.slow
def test_injected_nan_fails_only_its_job(tmp_path: Path) -> None:
    # Three methods: the failing one between two that must still finish.
    methods = for_experiment(merged_config("smoke")["methods"], "class_channels")[:3]
    write_overrides(tmp_path, {**SMALL, "methods": methods})
    failing = methods[1]
    targets = [f"results/resnet/cifar10/resnet18/{m}/grid0/seed0.nc" for m in methods]
    env = dict(os.environ, LABAUG_INJECT_NAN=f"cifar10:{failing}:0:2")
    proc = snakemake(tmp_path, "--cores", "2", "--keep-going", *targets, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert set(re.findall(r"Error in rule (\w+):", out)) == {"train_resnet"}, out[-3000:]
    log = (tmp_path / "logs" / "resnet" / "cifar10" / "resnet18" / failing / "grid0"
           / "seed0.log").read_text()
    assert "NonFiniteLossError" in out or "NonFiniteLossError" in log
    assert re.search(r"non-finite training loss .* at epoch 2", out + log), log
    assert all((tmp_path / t).exists() for t in targets if f"/{failing}/" not in t)
    assert not (tmp_path / targets[1]).exists()
    assert not _unexpected_files(tmp_path / "results")


@pytest.mark.slow
def test_killed_snakemake_orphan_finishes_and_its_run_is_never_trained_twice(
        tmp_path: Path) -> None:
    # Snakemake is SIGKILLed mid-run; its ResNet job, orphaned, keeps training.
    write_overrides(tmp_path, RESUME)
    log = tmp_path / LOG
    attempts = log.with_name("seed0.attempts.log")
    # Output to a file, not a pipe: the orphan keeps Snakemake's stdout open.
    with open(tmp_path / "killed.out", "w") as sink:
        proc = subprocess.Popen(command(tmp_path, *_run_args(RESNET_RUN)), stdout=sink,
                                stderr=subprocess.STDOUT)
    orphans: list[int] = []
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        if (tmp_path / CHECKPOINT).exists():
            orphans = _children_running(tmp_path, "train_resnet.py")
            if orphans:
                proc.kill()
                # Paused, so that it still holds its checkpoint while the rerun starts (on a
                # slow machine it could finish first otherwise); it resumes below.
                for pid in orphans:
                    os.kill(pid, signal.SIGSTOP)
                break
        time.sleep(0.02)
    proc.wait(timeout=60)
    assert orphans, "never saw the job running with a checkpoint"
    try:
        # A rerun while the orphan trains is refused: one checkpoint, one trainer.
        # What `snakemake --unlock` does, without starting Snakemake once more.
        shutil.rmtree(tmp_path / ".snakemake" / "locks")
        second = snakemake(tmp_path, "--rerun-incomplete", *_run_args(RESNET_RUN))
        assert second.returncode != 0
        refused = log.read_text()
        assert re.search(rf"CheckpointInUseError: checkpoint \S+seed0\.pt is in use by another "
                         rf"trainer \(pid {orphans[0]}", refused), refused[-3000:]
        assert "fix: wait for that trainer to finish" in refused
    finally:
        for pid in orphans:
            os.kill(pid, signal.SIGCONT)
        while _children_running(tmp_path, "train_resnet.py"):
            time.sleep(0.1)
    # The orphan finished its run (its final state stays in the checkpoint); every attempt's
    # log is kept, the orphan's and the refused one's.
    assert torch.load(tmp_path / CHECKPOINT, weights_only=True)["final"]
    history = attempts.read_text()
    assert f"epoch {EPOCHS}/{EPOCHS}" in history
    assert "CheckpointInUseError" in history
    # Snakemake reruns the job (the output counted as incomplete, or forced): the job rebuilds
    # the result from the final state and trains nothing.
    start = time.monotonic()
    forced = snakemake(tmp_path, "--rerun-incomplete", "--forcerun", "train_resnet",
                       *_run_args(RESNET_RUN))
    assert forced.returncode == 0, forced.stderr[-3000:]
    text = log.read_text()
    assert "training already finished" in text and "epoch 1/" not in text, text
    assert xr.load_dataset(tmp_path / RESNET_RUN).sizes["epoch"] == EPOCHS
    assert time.monotonic() - start < 120


@pytest.mark.slow
def test_a_truncated_per_seed_result_is_named_then_rebuilt(smoke_run: Path,
                                                           tmp_path: Path) -> None:
    work = tmp_path / "run"
    shutil.copytree(smoke_run, work, symlinks=True)
    seed_file = work / "results" / "linear" / "synthetic_zero" / "mixup" / "seed0.nc"
    seed_file.write_bytes(seed_file.read_bytes()[:200])
    target = "figures/fig1.pdf"
    failed = snakemake(work, "--cores", "2", target)
    assert failed.returncode != 0
    log = (work / "logs" / "aggregate" / "linear_synthetic_zero.log").read_text()
    assert re.search(r"CorruptFileError: \S*synthetic_zero/mixup/seed0\.nc is unreadable", log), log
    assert "seed0.nc.corrupt; run snakemake again" in log
    assert not seed_file.exists()
    fixed = snakemake(work, "--cores", "2", target)
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    assert "rebuilding what depends on files moved aside as unreadable" in fixed.stderr
    assert xr.load_dataset(seed_file)["test_error"].size > 0
    assert (work / target).stat().st_mtime > seed_file.stat().st_mtime


@pytest.mark.slow
@pytest.mark.parametrize(("spec", "message"), [
    ("cifar10:mixup:x:2", "LABAUG_INJECT_NAN entry 'cifar10:mixup:x:2': seed 'x' is not"),
    ("cifar10:mixup:0:9", "cifar10:mixup:0:9: epoch 9 is past the run's last epoch (2)"),
])
def test_inject_nan_matching_no_run_stops_the_dag(tmp_path: Path, spec: str,
                                                  message: str) -> None:
    write_overrides(tmp_path, SMALL)
    proc = snakemake(tmp_path, "-n", "--cores", "1", env=dict(os.environ, LABAUG_INJECT_NAN=spec))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and message in out, out[-3000:]


# --- no result file is ever half-written ------------------------------------------------------


def test_atomic_path_leaves_nothing_when_the_writer_fails(tmp_path: Path) -> None:
    target = tmp_path / "out" / "result.nc"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half a file")
        raise RuntimeError("killed mid-write")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_atomic_path_replaces_only_when_complete(tmp_path: Path) -> None:
    target = tmp_path / "result.txt"
    target.write_text("old, complete")

    def failing(path: Path) -> None:
        path.write_text("new, incomplete")
        raise OSError("disk full")

    with pytest.raises(OSError):
        write_atomic(target, failing)
    assert target.read_text() == "old, complete"
    write_atomic(target, lambda path: path.write_text("new, complete"))
    assert target.read_text() == "new, complete"
    assert [p.name for p in tmp_path.iterdir()] == ["result.txt"]


def test_netcdf_results_are_written_atomically(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    ds = xr.Dataset({"test_error": ("seed", np.array([0.1, 0.2]))})
    target = tmp_path / "results" / "run.nc"
    seen: list[Path] = []
    original = xr.Dataset.to_netcdf

    def crash_after_writing(self: xr.Dataset, path: Path, *args: object,
                            **kwargs: object) -> None:
        seen.append(Path(path))
        original(self, path, *args, **kwargs)  # type: ignore[call-overload]
        raise KeyboardInterrupt  # the job is killed after the bytes hit the disk

    monkeypatch.setattr(xr.Dataset, "to_netcdf", crash_after_writing)
    with pytest.raises(KeyboardInterrupt):
        write_netcdf(ds, target)
    assert seen and seen[0] != target and seen[0].parent == target.parent
    assert not target.exists() and list(target.parent.iterdir()) == []
    monkeypatch.undo()
    write_netcdf(ds, target)
    with xr.open_dataset(target) as back:
        np.testing.assert_array_equal(back["test_error"].values, [0.1, 0.2])


def test_every_result_writer_goes_through_atomic_path() -> None:
    # Writers of result, data and figure files must use labaug.io: grep the package for raw
    # writes that would create the final file directly.
    root = Path(__file__).resolve().parents[1] / "labaug"
    offenders = []
    for path in root.rglob("*.py"):
        if path.name == "io.py":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"\.to_netcdf\(|np\.savez|torch\.save\(|\.savefig\(", line):
                window = "\n".join(path.read_text().splitlines()[max(0, n - 4):n])
                if "tmp" not in window and "atomic" not in window:
                    offenders.append(f"{path.relative_to(root)}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
