"""Results are exactly what was asked: run fingerprints, checksummed files, configs checked up
front, resource failures named, roots isolated, no orphaned temporary files.

Unit level first (job functions, no Snakemake), then the workflow where only it can show the
behaviour (what reruns, two roots at once).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import xarray as xr
import yaml

from labaug.data.raw import RawImages, save_npz
from labaug.errors import CorruptFileError, DiskFullError, resource_error
from labaug.integrity import DIGEST_ATTR, DigestMismatch, content_digest, seal, unseal
from labaug.io import atomic_path, temporary_path
from labaug.jobs import linear_job, logged_job, resnet_job
from labaug.results import read_netcdf, write_netcdf
from labaug.schema import ConfigError, load_schema, validate_config
from labaug.train.checkpoints import load_checkpoint, read_checkpoint, save_checkpoint
from tests.cluster.smoke import SMALL, snakemake, write_overrides
from tests.conftest import REPO, merged_config
from tests.test_resnet import separable_raw

SCHEMA = load_schema(REPO / "workflow" / "schemas" / "config.schema.yaml")


def _close_log() -> None:
    for handler in logging.getLogger("labaug").handlers:
        handler.close()


def _resnet_config(**resnet: Any) -> dict[str, Any]:
    config = merged_config("smoke")
    config["resnet"].update({"datasets": ["fmnist"], "width": 2, "epochs": 2, "batch_size": 60,
                             "device": "cpu", "train_subset": None, "test_subset": None,
                             **resnet})
    return config


def _run(config: dict[str, Any], raw: Path, out: Path, log: Path) -> str:
    """One class-channel job (mixup, seed 0) in a logged job; its log's text."""
    with logged_job(log, "train_resnet"):
        resnet_job(config, "fmnist", "mixup", 0, out, raw)
    _close_log()
    return log.read_text()


# -- 1. a run is identified by everything that determines its numbers --------------------------

def test_a_precision_edit_retrains_and_says_why(tmp_path: Path) -> None:
    raw = tmp_path / "raw.npz"
    save_npz(separable_raw(n_train=120, n_test=60), raw)
    out, log = tmp_path / "results" / "resnet" / "run.nc", tmp_path / "run.log"
    _run(_resnet_config(), raw, out, log)
    first = xr.load_dataset(out)
    assert first.attrs["precision"] == "fp32"
    out.unlink()
    text = _run(_resnet_config(precision="bf16"), raw, out, log)
    assert "holds a finished run of other settings (precision: fp32 -> bf16)" in text
    assert "epoch 1/2" in text                                 # trained again
    again = xr.load_dataset(out)
    assert again.attrs["precision"] == "bf16"
    assert json.loads(again.attrs["run_fingerprint"])["precision"] == "bf16"
    assert not np.array_equal(again["train_loss"].values, first["train_loss"].values)
    # The same settings again: nothing is trained, the result is rebuilt as it was.
    out.unlink()
    text = _run(_resnet_config(precision="bf16"), raw, out, log)
    assert "training already finished (2 epochs, the same fingerprint)" in text
    assert "epoch 1/2" not in text
    np.testing.assert_array_equal(xr.load_dataset(out)["train_loss"].values,
                                  again["train_loss"].values)


def test_other_data_behind_the_same_config_retrains(tmp_path: Path) -> None:
    raw = tmp_path / "raw.npz"
    save_npz(separable_raw(n_train=120, n_test=60), raw)
    out, log = tmp_path / "results" / "resnet" / "run.nc", tmp_path / "run.log"
    _run(_resnet_config(), raw, out, log)
    digest = json.loads(xr.load_dataset(out).attrs["run_fingerprint"])["data_digest"]
    save_npz(separable_raw(n_train=120, n_test=60, seed=1), raw)   # another archive, same name
    out.unlink()
    text = _run(_resnet_config(), raw, out, log)
    assert "holds a finished run of other settings (data_digest: " in text
    assert json.loads(xr.load_dataset(out).attrs["run_fingerprint"])["data_digest"] != digest


def test_settings_that_change_no_number_stay_out_of_the_fingerprint(tmp_path: Path) -> None:
    raw = tmp_path / "raw.npz"
    save_npz(separable_raw(n_train=120, n_test=60), raw)
    out, log = tmp_path / "results" / "resnet" / "run.nc", tmp_path / "run.log"
    _run(_resnet_config(), raw, out, log)
    out.unlink()
    text = _run(_resnet_config(checkpoint_minutes=3.0, runs_per_gpu=4), raw, out, log)
    assert "training already finished" in text and "epoch 1/2" not in text


def test_a_same_value_edit_is_the_same_config() -> None:
    base, edited = merged_config("smoke"), merged_config("smoke")
    edited["optim"]["batch_size"] = 100.0
    edited["seeds"] = [0.0, 1.0]
    edited["theory"]["n_samples"] = 2.0e4
    edited["synthetic"]["n_train"] = 1000.0
    validate_config(edited, SCHEMA)
    validate_config(base, SCHEMA)
    assert edited == base
    assert type(edited["optim"]["batch_size"]) is int and type(edited["seeds"][0]) is int
    assert type(edited["optim"]["lr"]) is float          # a number key keeps its float


def test_adding_a_seed_trains_only_that_seed(tmp_path: Path) -> None:
    config = merged_config("smoke")
    outs = [tmp_path / "results" / "linear" / "synthetic_zero" / "mixup" / f"seed{s}.nc"
            for s in (0, 1)]
    log = tmp_path / "sweep.log"
    with logged_job(log, "linear_sweep"):
        linear_job(config, "synthetic", "zero", "mixup", [0], outs[:1])
    first = xr.load_dataset(outs[0])
    assert (tmp_path / "checkpoints" / "linear" / "synthetic_zero" / "mixup" / "seed0.nc").exists()
    for out in outs:
        out.unlink(missing_ok=True)           # as Snakemake does before rerunning a job
    with logged_job(log, "linear_sweep"):
        linear_job(config, "synthetic", "zero", "mixup", [0, 1], outs)
    _close_log()
    text = log.read_text()
    assert "seed 0: finished before with the same fingerprint" in text
    assert "seed 1: finished before" not in text
    np.testing.assert_array_equal(xr.load_dataset(outs[0])["w_high_norm"].values,
                                  first["w_high_norm"].values)
    assert xr.load_dataset(outs[1]).attrs["seed"] == 1


# -- 2. every file read back is verified ------------------------------------------------------

def _flip(path: Path, offset: int, bit: int = 0) -> None:
    """Flip one bit of ``path`` at ``offset``, keeping its modification time."""
    stat = path.stat()
    data = bytearray(path.read_bytes())
    data[offset] ^= 1 << bit
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def _value_offset(path: Path, values: np.ndarray) -> int:
    """Where the raw bytes of ``values`` start in ``path`` (a data block of a netCDF file)."""
    offset = path.read_bytes().find(np.ascontiguousarray(values).tobytes())
    assert offset >= 0
    return offset


def test_a_single_bit_flip_in_a_result_value_is_caught(tmp_path: Path) -> None:
    values = np.linspace(0.1, 0.9, 40)
    path = tmp_path / "seed0.nc"
    write_netcdf(xr.Dataset({"test_error": ("x", values)}, attrs={"seed": 0}), path)
    assert DIGEST_ATTR in xr.load_dataset(path).attrs
    np.testing.assert_array_equal(read_netcdf(path)["test_error"].values, values)
    _flip(path, _value_offset(path, values) + 17, bit=3)
    raw = xr.load_dataset(path)["test_error"].values          # xarray alone reads a wrong value
    assert not np.array_equal(raw, values)
    with pytest.raises(CorruptFileError, match=r"seed0\.nc is unreadable \(DigestMismatch"):
        read_netcdf(path)


@pytest.mark.parametrize("where", ["header", "middle", "end"])
def test_any_damage_to_a_result_file_is_named_whatever_the_library_raises(
        tmp_path: Path, where: str) -> None:
    path = tmp_path / "agg.nc"
    write_netcdf(xr.Dataset({"w": (("a", "b"), np.arange(12.0).reshape(3, 4))},
                            coords={"a": ["x", "y", "z"]}), path)
    size = path.stat().st_size
    offset = {"header": 16, "middle": size // 2, "end": size - 40}[where]
    for k in range(8):                         # 8 bytes: damage that no library overlooks
        _flip(path, offset + k, bit=k)
    with pytest.raises(CorruptFileError, match=r"agg\.nc is unreadable"):
        read_netcdf(path)


def test_a_checkpoint_carries_its_checksum_and_a_flipped_bit_is_refused(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from labaug.train.resnet import ResNetRun

    ckpt = tmp_path / "seed0.pt"
    weights = torch.linspace(0.0, 1.0, 256)
    save_checkpoint(ckpt, {"fingerprint": {"a": 1}, "epoch": 3,
                           "metrics": {"test_error": [0.8333, 0.5, 0.25]},
                           "trainer": {"model": {"w": weights}}})
    assert read_checkpoint(ckpt)["epoch"] == 3
    raw = ckpt.read_bytes()
    offset = raw.find(weights.numpy().tobytes()) + 600
    _flip(ckpt, offset, bit=1)
    with pytest.raises(DigestMismatch):
        read_checkpoint(ckpt)
    with caplog.at_level(logging.WARNING, logger="labaug"):
        assert load_checkpoint(ckpt, ResNetRun("gen", "mixup", 0)) is None
    assert "is unreadable or altered (DigestMismatch" in caplog.text
    assert ckpt.with_name("seed0.pt.corrupt").exists() and not ckpt.exists()


def test_seal_detects_any_change_and_needs_a_digest() -> None:
    payload = {"epoch": 2, "metrics": {"x": [0.1, 0.2]}, "w": torch.ones(3)}
    sealed = seal(payload)
    assert unseal(sealed).keys() == payload.keys()
    assert content_digest({"b": 1, "a": 2}) == content_digest({"a": 2, "b": 1})
    changed = {**sealed, "metrics": {"x": [0.1, 0.20000001]}}
    with pytest.raises(DigestMismatch):
        unseal(changed)
    with pytest.raises(DigestMismatch, match="no checksum"):
        unseal(payload)


# -- 3. types and shapes checked up front -----------------------------------------------------

@pytest.mark.parametrize(("extra", "key", "allowed"), [
    ({"seeds": [12345678901234567890]}, "seeds[0]", "[0, 4294967295]"),
    ({"seeds": [-1]}, "seeds[0]", "[0, 4294967295]"),
    ({"seeds": [1.5]}, "seeds[0]", "must be an integer"),
    ({"optim": {"batch_size": 100.5}}, "optim.batch_size", "must be an integer"),
    ({"theory": {"n_samples": 1.5e6 + 0.5}}, "theory.n_samples", "must be an integer"),
    ({"output_root": "README.md"}, "output_root", "is an existing file"),
])
def test_bad_values_are_refused_by_key(extra: dict[str, Any], key: str, allowed: str,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)                    # README.md exists here
    config = merged_config()
    for section, value in extra.items():
        if isinstance(value, dict):
            config[section].update(value)
        else:
            config[section] = value
    with pytest.raises(ConfigError) as info:
        validate_config(config, SCHEMA)
    assert f"- {key}" in str(info.value) and allowed in str(info.value), str(info.value)


@pytest.mark.slow
def test_a_methods_subset_builds_what_it_can_and_refuses_the_rest(tmp_path: Path) -> None:
    write_overrides(tmp_path, {**SMALL, "methods": ["cutmix"]})
    proc = snakemake(tmp_path, "-n", "--cores", "1", timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    for name in ("fig2", "fig3", "fig4", "fig7", "fig8"):
        assert f"figures/{name}.pdf" in out, name
    for name in ("fig1", "fig6", "theory"):
        assert f"figures/{name}.pdf" not in out, name
    assert "rule theory:" not in out
    proc = snakemake(tmp_path, "-n", "--cores", "1", "figures/fig1.pdf", timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "figures/fig1.pdf cannot be built with this config: it needs methods to include a " \
           "method that runs on synthetic" in out, out[-3000:]


# -- 4. resource failures are named ------------------------------------------------------------

def test_a_full_disk_is_named_with_the_path(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    def no_space(self: xr.Dataset, path: Path, *args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(xr.Dataset, "to_netcdf", no_space)
    target = tmp_path / "results" / "seed0.nc"
    log = tmp_path / "job.log"
    with pytest.raises(DiskFullError), logged_job(log, "linear_sweep"):
        write_netcdf(xr.Dataset({"a": ("x", np.zeros(2))}), target)
    _close_log()
    text = log.read_text()
    assert f"failed: DiskFullError: no space left on the device while writing {target}" in text
    assert "free disk space" in text
    assert not list(target.parent.iterdir())          # nothing half-written is left


@pytest.mark.parametrize(("err", "kind"), [
    (RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed "
                  "writing file data/2: file write failed"), None),
    (RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), "OutOfMemoryError"),
    (MemoryError(), "OutOfMemoryError"),
    (PermissionError(errno.EACCES, "Permission denied", "/x/y.nc"), "PermissionDeniedError"),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), "DiskFullError"),
])
def test_resource_failures_are_recognized_whatever_raised_them(err: BaseException,
                                                               kind: str | None) -> None:
    problem = resource_error(err)
    assert (type(problem).__name__ if problem is not None else None) == kind
    wrapped = RuntimeError("netCDF: HDF error")
    wrapped.__cause__ = err
    again = resource_error(wrapped)
    assert (type(again).__name__ if again is not None else None) == kind


def test_a_write_that_fails_on_a_full_disk_is_named_whatever_the_library_said(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import labaug.errors

    monkeypatch.setattr(labaug.errors, "free_bytes", lambda path: 0)
    with pytest.raises(DiskFullError, match="while writing .*ckpt.pt; 0.0 MiB free"):
        with atomic_path(tmp_path / "ckpt.pt"):
            raise RuntimeError("PytorchStreamWriter failed writing file data/2: file write "
                               "failed")


# -- 5. isolated output roots ------------------------------------------------------------------

@pytest.mark.slow
def test_two_roots_started_at_once_share_raw_data_safely(tmp_path: Path) -> None:
    from tests.cluster.smoke import command

    write_overrides(tmp_path, SMALL)
    procs = []
    for root in ("one", "two"):
        extra = tmp_path / f"{root}.yaml"
        extra.write_text(yaml.safe_dump({"output_root": root}))
        cmd = command(tmp_path, "--cores", "1", f"{root}/figures/fig5.pdf", configs=[extra])
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True))
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    for proc, out in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, out[-3000:]
        assert "LockException" not in out
    shared = list((tmp_path / "data" / "shared").glob("cifar10-*.npz"))
    assert len(shared) == 1
    for root in ("one", "two"):
        assert (tmp_path / root / "figures" / "fig5.pdf").exists()
        assert (tmp_path / root / "data" / "raw" / "cifar10.npz").samefile(shared[0])
    # A root whose data source is bad fails alone: the shared file and the other root's stay.
    bad = tmp_path / "bad.yaml"
    config = yaml.safe_load((tmp_path / "overrides.yaml").read_text())
    bad.write_text(yaml.safe_dump({"output_root": "three", "data_checksums": {
        "cifar10": {name: "0" * 32 for name in config["data_checksums"]["cifar10"]}}}))
    proc = snakemake(tmp_path, "--cores", "1", "three/figures/fig5.pdf", configs=[bad])
    assert proc.returncode != 0 and "ChecksumError" in proc.stdout + proc.stderr
    assert shared[0].exists() and (tmp_path / "one" / "data" / "raw" / "cifar10.npz").exists()
    extra = tmp_path / "one.yaml"
    proc = snakemake(tmp_path, "-n", "--cores", "1", "one/figures/fig5.pdf", configs=[extra])
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_checkpoints_live_under_an_output_root_that_contains_results(tmp_path: Path) -> None:
    raw = tmp_path / "raw.npz"
    save_npz(separable_raw(n_train=120, n_test=60), raw)
    out = tmp_path / "results" / "mine" / "results" / "resnet" / "fmnist" / "resnet18" \
        / "mixup" / "grid0" / "seed0.nc"
    with logged_job(tmp_path / "run.log", "train_resnet"):
        resnet_job(_resnet_config(), "fmnist", "mixup", 0, out, raw)
    _close_log()
    assert (tmp_path / "results" / "mine" / "checkpoints" / "resnet" / "fmnist" / "resnet18"
            / "mixup" / "grid0" / "seed0.pt").exists()
    assert not (tmp_path / "checkpoints").exists()


# -- 6. no orphans -----------------------------------------------------------------------------

def test_a_killed_writers_temporary_file_is_removed_by_the_next_write(tmp_path: Path) -> None:
    target = tmp_path / "seed0.pt"
    # A writer killed mid-write: its process is gone, its temporary file is not.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    orphan = target.with_name(f".{target.name}.tmp{int(dead.stdout)}.pt")
    orphan.write_bytes(b"x" * 1000)
    alive = temporary_path(target).with_name(f".{target.name}.tmp{os.getppid()}.pt")
    alive.write_bytes(b"in use")                    # a live process's write is left alone
    save_checkpoint(target, {"fingerprint": {}, "epoch": 1, "metrics": {}})
    assert not orphan.exists() and alive.exists() and target.exists()


def test_a_raw_dataset_file_keeps_its_content_checked(tmp_path: Path) -> None:
    raw = RawImages(np.zeros((4, 1, 2, 2), np.uint8), np.arange(4), np.zeros((2, 1, 2, 2),
                    np.uint8), np.arange(2), ("a", "b", "c", "d"))
    path = tmp_path / "raw.npz"
    save_npz(raw, path)
    data = path.read_bytes()
    _flip(path, data.find(np.arange(4).astype(np.int64).tobytes()) + 8, bit=0)
    from labaug.data.raw import load_npz

    with pytest.raises(CorruptFileError, match="raw.npz is unreadable"):
        load_npz(path)


@pytest.mark.slow
def test_a_flipped_bit_in_an_aggregate_is_named_set_aside_and_rebuilt(smoke_run: Path,
                                                                     tmp_path: Path) -> None:
    import shutil

    work = tmp_path / "run"
    shutil.copytree(smoke_run, work, symlinks=True)
    aggregate = work / "results" / "linear" / "synthetic_zero.nc"
    values = xr.load_dataset(aggregate)["w_high_norm"].values
    _flip(aggregate, _value_offset(aggregate, values) + 5, bit=2)    # modification time kept
    failed = snakemake(work, "--cores", "2", "figures/fig1.pdf", "--forcerun",
                       "figures/fig1.pdf")
    assert failed.returncode != 0
    log = (work / "logs" / "figures" / "fig1.log").read_text()
    assert re.search(r"CorruptFileError: \S*synthetic_zero\.nc is unreadable \(DigestMismatch",
                     log), log[-2000:]
    assert aggregate.with_name("synthetic_zero.nc.corrupt").exists() and not aggregate.exists()
    fixed = snakemake(work, "--cores", "2", "figures/fig1.pdf")
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    np.testing.assert_array_equal(read_netcdf(aggregate)["w_high_norm"].values, values)
    again = snakemake(work, "-n", "--cores", "1", "figures/fig1.pdf")
    assert "Nothing to be done" in again.stdout + again.stderr
