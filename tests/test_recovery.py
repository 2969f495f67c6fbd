"""Failures explain themselves in the rule's log, corrupt files are named and recoverable, and a
finished run is never trained twice (unit level: job functions, no Snakemake)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import xarray as xr

from labaug.data.channels import class_channel_data
from labaug.data.raw import save_npz
from labaug.errors import CheckpointInUseError, CorruptFileError, LabaugError
from labaug.jobs import aggregate_job, linear_job, logged_job, resnet_job, task_job
from labaug.results import write_netcdf
from labaug.train.checkpoints import checkpoint_lock, checkpoint_path
from labaug.train.inject import NAN_ENV, NanInjection, parse_inject_nan, unmatched_injections
from labaug.train.resnet import ResNetRun, train_resnet
from tests.conftest import merged_config
from tests.test_resnet import OPTIM, TINY, separable_raw

WILDCARDS = {"data": "synthetic", "variance": "zero", "method": "mixup"}


def _close_log() -> None:
    for handler in logging.getLogger("labaug").handlers:
        handler.close()


def _small_resnet_config() -> dict[str, Any]:
    config = merged_config("smoke")
    config["resnet"].update({"datasets": ["fmnist"], "width": 2, "epochs": 2, "batch_size": 60,
                             "device": "cpu", "train_subset": None, "test_subset": None})
    return config


def test_a_failure_is_explained_in_the_log_and_a_rerun_keeps_it(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "job.log"
    with pytest.raises(LabaugError), logged_job(log, "linear_sweep", WILDCARDS):
        raise LabaugError("something known went wrong", fix="set optim.lr to 0.1")
    with logged_job(log, "linear_sweep", WILDCARDS):
        logging.getLogger("labaug").info("second attempt ok")
    _close_log()
    assert "went wrong" not in log.read_text()
    log.unlink()     # as Snakemake does before each attempt
    with logged_job(log, "linear_sweep", WILDCARDS):
        logging.getLogger("labaug").info("third attempt ok")
    _close_log()
    failed = (tmp_path / "logs" / "job.attempts.log").read_text()
    assert failed.count("attempt started") == 3 and "third attempt ok" in failed
    for part in ("rule linear_sweep", "data=synthetic variance=zero method=mixup",
                 "LabaugError: something known went wrong", "fix: set optim.lr to 0.1",
                 "Traceback"):
        assert part in failed, part
    assert "third attempt ok" in log.read_text()


def test_an_unreadable_raw_npz_is_named_and_moved_aside(tmp_path: Path) -> None:
    raw = tmp_path / "data" / "raw" / "cifar10.npz"
    raw.parent.mkdir(parents=True)
    raw.write_bytes(b"PK\x03\x04 not really a zip archive")
    log = tmp_path / "job.log"
    wildcards = {"dataset": "cifar10", "pair": "0-1", "variance": "zero"}
    with pytest.raises(CorruptFileError, match=r"cifar10\.npz is unreadable"), \
            logged_job(log, "binary_task", wildcards):
        task_job(merged_config("smoke"), "cifar10", (0, 1), "zero", raw, tmp_path / "task.npz")
    _close_log()
    text = log.read_text()
    assert f"{raw} is unreadable (BadZipFile" in text
    assert f"moved the unreadable {raw} to {raw}.corrupt; run snakemake again" in text
    assert not raw.exists() and raw.with_name("cifar10.npz.corrupt").exists()
    assert not (tmp_path / "task.npz").exists()


def test_an_unreadable_task_file_is_named_and_moved_aside(tmp_path: Path) -> None:
    task = tmp_path / "data" / "tasks" / "cifar10_pair0-1_zero.npz"
    task.parent.mkdir(parents=True)
    task.write_bytes(b"PK\x03\x04 truncated")
    log = tmp_path / "job.log"
    with pytest.raises(CorruptFileError, match=r"cifar10_pair0-1_zero\.npz is unreadable"), \
            logged_job(log, "linear_sweep", {**WILDCARDS, "data": "cifar10"}):
        linear_job(merged_config("smoke"), "cifar10", "zero", "mixup", [0],
                   [tmp_path / "out.nc"], task_path=task)
    _close_log()
    assert f"moved the unreadable {task} to {task}.corrupt" in log.read_text()
    assert not (tmp_path / "out.nc").exists()


def test_an_unreadable_per_seed_result_is_named(tmp_path: Path) -> None:
    good = tmp_path / "seed0.nc"
    write_netcdf(xr.Dataset({"test_error": ("seed", np.array([0.1]))}, coords={"seed": [0]}),
                 good)
    bad = tmp_path / "seed1.nc"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CorruptFileError, match=r"seed1\.nc is unreadable"):
        aggregate_job(merged_config("smoke"), [good, bad], tmp_path / "agg.nc", "synthetic")
    assert not (tmp_path / "agg.nc").exists()


def test_a_result_is_read_back_before_it_is_put_in_place(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import labaug.results

    def unreadable(path: Path) -> xr.Dataset:
        raise CorruptFileError(path, "simulated bad write")

    monkeypatch.setattr(labaug.results, "read_netcdf", unreadable)
    target = tmp_path / "r.nc"
    with pytest.raises(CorruptFileError, match="simulated bad write"):
        write_netcdf(xr.Dataset({"a": ("x", np.zeros(2))}), target)
    assert list(tmp_path.iterdir()) == []


def test_an_unreadable_checkpoint_is_moved_aside_and_the_run_starts_afresh(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = class_channel_data(separable_raw(n_train=120, n_test=60), "gen", 0)
    run = ResNetRun("gen", "weight_decay", 0)
    fresh = train_resnet(data, run, OPTIM, TINY, epochs=1)
    ckpt = tmp_path / "seed0.pt"
    ckpt.write_bytes(b"half a checkpoint")
    with caplog.at_level(logging.WARNING, logger="labaug"):
        again = train_resnet(data, run, OPTIM, TINY, epochs=1, checkpoint=ckpt)
    assert f"checkpoint {ckpt} is unreadable" in caplog.text and "starting afresh" in caplog.text
    assert ckpt.with_name("seed0.pt.corrupt").read_bytes() == b"half a checkpoint"
    np.testing.assert_array_equal(again.train_loss, fresh.train_loss)


def test_a_second_trainer_on_one_checkpoint_is_refused(tmp_path: Path) -> None:
    ckpt = tmp_path / "seed0.pt"
    with checkpoint_lock(ckpt):
        with pytest.raises(CheckpointInUseError,
                           match=rf"in use by another trainer \(pid {os.getpid()}.*fix: wait"):
            with checkpoint_lock(ckpt):
                pass
    with checkpoint_lock(ckpt):     # released: the next trainer gets it
        pass


def test_a_finished_run_is_rebuilt_from_its_final_state_not_retrained(tmp_path: Path) -> None:
    raw = tmp_path / "data" / "raw" / "fmnist.npz"
    save_npz(separable_raw(n_train=120, n_test=60), raw)
    config = _small_resnet_config()
    out = tmp_path / "results" / "resnet" / "fmnist" / "mixup" / "seed0.nc"
    log = tmp_path / "run.log"
    with logged_job(log, "train_resnet"):
        resnet_job(config, "fmnist", "mixup", 0, out, raw)
    first = xr.load_dataset(out)
    ckpt = checkpoint_path(out)
    state = torch.load(ckpt, weights_only=True)
    assert state["final"] and "trainer" not in state
    out.unlink()     # as Snakemake does with an incomplete or forced output
    with logged_job(log, "train_resnet"):
        resnet_job(config, "fmnist", "mixup", 0, out, raw)
    _close_log()
    text = log.read_text()
    assert ("training already finished (2 epochs, the same fingerprint); result rebuilt from "
            "the final state") in text
    assert "epoch 1/2" not in text
    again = xr.load_dataset(out)
    for name in ("test_error", "train_loss", "train_error"):
        np.testing.assert_array_equal(again[name].values, first[name].values)


@pytest.mark.parametrize(("spec", "problem"), [
    ("fmnist:mixup:x:2", "seed 'x' is not a whole number"),
    ("fmnist:mixup:0", "has 3 fields, not 4"),
    ("fmnist:MixUp:0:1", "method 'MixUp' is not one of"),
    ("fmnist:mixup:0:0", "epoch '0' is not a whole number >= 1"),
])
def test_inject_nan_is_parsed_strictly(spec: str, problem: str) -> None:
    with pytest.raises(ValueError, match=rf"{NAN_ENV} entry .*: {problem}"):
        parse_inject_nan(spec)


def test_inject_nan_tolerates_spaces_and_reports_entries_matching_no_run() -> None:
    entries = parse_inject_nan(" cifar10 : mixup : 0 : 2 ,, CIFAR10:mixup:0:1, cifar10:mixup:0:9,")
    assert entries[0] == NanInjection("cifar10", "mixup", 0, 2)
    problems = unmatched_injections(entries, ["cifar10"], ["mixup"], [0, 1], epochs=2)
    assert len(problems) == 2
    assert "dataset CIFAR10 is not in resnet.datasets" in problems[0]
    assert "epoch 9 is past the run's last epoch (2)" in problems[1]
