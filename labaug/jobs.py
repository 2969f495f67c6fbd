"""Every workflow job's entry point: what a Snakemake script calls, testable without Snakemake."""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labaug import augment, slices
from labaug.config import (
    Method,
    ResNetConfig,
    Variance,
    grid_config,
    optim_config,
    synthetic_config,
    theory_config,
)
from labaug.devices import DEVICE_KEYS, device_name, job_gpu, require_device, resolve_device
from labaug.errors import CorruptFileError, LabaugError, quarantine, resource_error
from labaug.results import aggregate_files, linear_job_dataset, provenance, write_netcdf

if TYPE_CHECKING:
    import xarray as xr

    from labaug.data import LinearData
    from labaug.data.raw import RawImages
    from labaug.train.linear import SweepResult

log = logging.getLogger("labaug")

PathLike = str | os.PathLike[str]


def attempts_path(log_path: PathLike) -> Path:
    """Where every attempt of a job is logged, one after another: ``seed0.log`` ->
    ``seed0.attempts.log`` (Snakemake deletes the rule's own log before each attempt)."""
    path = Path(log_path)
    return path.with_name(f"{path.stem}.attempts{path.suffix or '.log'}")


def setup_logging(log_path: PathLike | None) -> None:
    """Send labaug's progress lines to the rule's log file (and stderr when there is none), and
    append them to `attempts_path`, which keeps every earlier attempt, a killed one included."""
    handlers: list[logging.Handler] = []
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers = [logging.FileHandler(log_path, mode="w"),
                    logging.FileHandler(attempts_path(log_path), mode="a")]
    else:
        handlers = [logging.StreamHandler(sys.stderr)]
    root = logging.getLogger("labaug")
    for handler in root.handlers:
        handler.close()
    for handler in handlers:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.handlers[:] = handlers
    root.setLevel(logging.INFO)


@contextmanager
def logged_job(log_path: PathLike | None, rule: str,
               wildcards: Mapping[str, Any] | None = None) -> Iterator[None]:
    """Run a job's body with its log set up (`setup_logging`: the rule's log, and every attempt
    in `attempts_path`); any failure is written to the rule's log: the rule,
    the job's wildcards, the exception's type and message, the fix where the cause is known, and
    the traceback. A lack of disk space, memory or permission is said as such in one line, with
    the path, whatever library raised it (`labaug.errors.resource_error`). An unreadable input
    file is moved aside (``.corrupt``) so the next run rebuilds it."""
    setup_logging(log_path)
    job = " ".join(f"{k}={v}" for k, v in (wildcards or {}).items()) or "(no wildcards)"
    log.info("==== rule %s, job %s: attempt started (pid %d) ====", rule, job, os.getpid())
    try:
        yield
    except BaseException as err:
        problem = resource_error(err) if isinstance(err, Exception) else None
        shown = err if problem is None else problem
        log.error("rule %s, job %s failed: %s: %s", rule, job, type(shown).__name__, shown)
        if isinstance(err, CorruptFileError):
            moved = quarantine(err.path)
            if moved is not None:
                log.error("moved the unreadable %s to %s; run snakemake again and the rule that "
                          "writes %s rebuilds it (everything after it reruns)", err.path, moved,
                          err.path.name)
        elif isinstance(shown, LabaugError) and shown.fix:
            log.error("fix: %s", shown.fix)
        elif type(err).__name__ == "NonFiniteLossError":
            log.error("fix: %s", "if LABAUG_INJECT_NAN is set, this failure was injected "
                      "(unset it); else lower optim.lr, or check the run's data and settings")
        log.error("traceback:\n%s", "".join(traceback.format_exception(err)).rstrip())
        raise


def low_noise_of(part: Mapping[str, Any], variance: Variance) -> float:
    """The noise scale of a variant: config ``low_noise`` for the low variant (the only one whose
    slice holds it), 0 for zero variance."""
    return float(part.get("low_noise", 0.0)) if variance == "low" else 0.0


def synthetic_data(part: Mapping[str, Any], variance: Variance, seed: int) -> LinearData:
    """The synthetic training/test split of one seed, from a config slice
    (`labaug.slices.linear_slice` or the whole config)."""
    from labaug.data.synthetic import make_synthetic

    return make_synthetic(synthetic_config(part["synthetic"]), seed, variance,
                          low_noise_of(part, variance))


def process_seconds() -> float | None:
    """Wall seconds since this process started (Linux ``/proc``), or None where unknown."""
    try:
        stat = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - int(stat[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def checked_device(device: str, family: str, rule: str, job: str) -> str:
    """The resolved device of a job, checked to exist here (`labaug.devices.require_device`);
    the error also goes to the rule's log."""
    try:
        require_device(device, key=DEVICE_KEYS[family], rule=rule, job=job)
    except RuntimeError as err:
        log.error("%s", err)
        raise
    return device


def linear_job(config: Mapping[str, Any], data: str, variance: Variance, method: Method,
               seeds: Sequence[int], outs: Sequence[PathLike], task_path: PathLike | None = None,
               threads: int = 1, rule: str = "linear_sweep",
               caches: Sequence[PathLike] | None = None) -> None:
    """Train one method's whole grid for each seed and write one netCDF per seed (``outs``).

    ``config``: the job's slice (`labaug.slices.linear_slice`) or the whole config; image data
    come from the task file (`labaug.data.images.write_task`) that the ``binary_task`` rule
    made. Each seed's finished result is kept in its cache file (``caches``, one per seed; the
    workflow passes {output_root}/checkpoints/linear/...; default `cache_path` of each output)
    with its fingerprint (`labaug.fingerprint.linear_fingerprint`): a seed whose cache holds
    the same fingerprint is not trained again, so adding a seed trains only that seed. The log
    gives the start-up (interpreter and imports, reading data) beside training."""
    import torch

    from labaug.fingerprint import linear_fingerprint
    from labaug.integrity import array_digest
    from labaug.train.linear import train_sweep

    started = process_seconds()
    t0 = time.perf_counter()
    part = slices.linear_slice(config, data, variance, method)
    if len(seeds) != len(outs):
        raise ValueError(f"{len(seeds)} seeds but {len(outs)} output files")
    cache_files = [Path(c) for c in caches] if caches is not None else [cache_path(o)
                                                                          for o in outs]
    job = f"data={data} variance={variance} method={method} seeds={list(seeds)}"
    device = checked_device(part["linear"]["device"], "linear", rule, job)
    torch.set_num_threads(threads)
    task = None
    if data != "synthetic":
        from labaug.data.images import read_task

        if task_path is None:
            raise ValueError(f"linear experiment on {data!r} needs its task file")
        task = read_task(task_path)
    values = grid_config(part["grids"][method]).values()
    optim = optim_config(part["optim"])
    per_batch = bool(part.get("mix_per_batch", False))
    t_data = time.perf_counter()
    timings = {"train": 0.0, "write": 0.0}
    for seed, out, cache in zip(seeds, outs, cache_files, strict=True):
        t = time.perf_counter()
        dataset = (task.for_seed(seed) if task is not None
                   else synthetic_data(part, variance, seed))
        if seed == seeds[0]:
            log.info("%s_%s: %d train / %d test points, %d features%s", data, variance,
                     len(dataset.y_train), len(dataset.y_test), dataset.n_features,
                     f", classes {dataset.classes}" if dataset.classes else "")
        fingerprint = linear_fingerprint(
            data=data, variance=variance, method=method, values=values.tolist(), seed=seed,
            optim=optim, mix_per_batch=per_batch, device=device,
            data_digest=array_digest(dataset.x_train, dataset.y_train, dataset.x_test,
                                     dataset.y_test))
        if reuse_finished(cache, fingerprint, out, f"seed {seed}"):
            timings["write"] += time.perf_counter() - t
            continue
        result = train_sweep(dataset, method, values, seed, optim, mix_per_batch=per_batch,
                             device=device)
        t_train = time.perf_counter()
        timings["train"] += t_train - t
        write_linear_result(part, data, variance, method, seed, dataset, result, device, cache,
                            fingerprint)
        publish(cache, out)
        timings["write"] += time.perf_counter() - t_train
    startup = "unknown" if started is None else f"{started:.2f} s"
    log.info("timing: start-up %s (interpreter and imports), reading data %.2f s, training "
             "%.2f s, writing %.2f s (%d seeds)", startup, t_data - t0, timings["train"],
             timings["write"], len(seeds))


def cache_path(output: PathLike) -> Path:
    """Where a linear sweep's finished result is kept: {root}/results/linear/... ->
    {root}/checkpoints/linear/... (the results directory right above ``linear``)."""
    parts = list(Path(output).parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "results" and parts[i + 1] == "linear":
            parts[i] = "checkpoints"
            return Path(*parts)
    return Path(output).with_name(Path(output).stem + ".cache.nc")


def reuse_finished(cache: Path, fingerprint: Mapping[str, Any], out: PathLike,
                   what: str) -> bool:
    """Publish ``cache`` as ``out`` when it holds a finished result of exactly ``fingerprint``
    (said in the log); False (saying why) when there is none, it is of other settings, or it is
    unreadable (then it is moved aside)."""
    import json

    from labaug.fingerprint import differences, digest
    from labaug.results import read_netcdf

    if not cache.exists():
        return False
    try:
        held = read_netcdf(cache)
    except CorruptFileError as err:
        moved = quarantine(cache)
        log.warning("%s: the finished result %s is unreadable or altered (%s); moved it to %s "
                    "and training again", what, cache, err.reason, moved)
        return False
    if held.attrs.get("run_fingerprint_sha256") == digest(fingerprint):
        publish(cache, out)
        log.info("%s: finished before with the same fingerprint (%s); nothing retrained",
                 what, cache)
        return True
    try:
        old = json.loads(str(held.attrs["run_fingerprint"]))
    except (KeyError, ValueError):
        old = None
    log.info("%s: the finished result %s is of other settings (%s); training again", what,
             cache, "; ".join(differences(old, fingerprint)))
    return False


def publish(cache: Path, out: PathLike) -> None:
    """Make ``out`` the finished result ``cache`` (a hard link where the filesystem allows,
    else a copy), atomically."""
    import shutil

    from labaug.io import atomic_path

    with atomic_path(out) as tmp:
        try:
            os.link(cache, tmp)
        except OSError:
            shutil.copyfile(cache, tmp)


def write_linear_result(part: Mapping[str, Any], data: str, variance: Variance, method: Method,
                        seed: int, dataset: LinearData, result: SweepResult, device: str,
                        out: PathLike, fingerprint: Mapping[str, Any] | None = None) -> None:
    """One seed's sweep as its per-seed netCDF (`labaug.results.linear_job_dataset`), with its
    fingerprint where given."""
    from labaug.data.synthetic import high_block, low_block
    from labaug.metrics import block_norm, pixel_ratio

    variables = {
        "test_error": (result.test_error, "test error (fraction misclassified)"),
        "train_loss": (result.train_loss,
                       "mean training loss over the last epoch, under the method's own "
                       "objective, without the weight-decay penalty"),
    }
    if data == "synthetic":
        syn = synthetic_config(part["synthetic"])
        variables["w_high_norm"] = (block_norm(result.weights, high_block(syn)),
                                    "norm of the weights on the high-variance block")
        variables["w_low_norm"] = (block_norm(result.weights, low_block(syn)),
                                   "norm of the weights on the low-variance block")
    else:
        variables["pixel_ratio"] = (pixel_ratio(result.weights),
                                    "|w_1| / ||w_2:||, identifying pixel weight over the rest")
    ds = linear_job_dataset(method, seed, result.hp_values, result.weights, variables,
                            provenance(part, seed=seed, device=device))
    ds.attrs.update({"data": data, "variance": variance})
    if fingerprint is not None:
        ds.attrs.update(fingerprint_attrs(fingerprint))
    if data != "synthetic":
        ds.attrs.update({"class_pair": dataset.classes,
                         "class_pair_indices": list(slices.pair_of(part, data))})
    write_netcdf(ds, out)
    log.info("wrote %s", out)


def task_job(config: Mapping[str, Any], dataset: str, pair: tuple[int, int], variance: Variance,
             raw_path: PathLike, out: PathLike) -> None:
    """Standardize one binary image task once (each sweep job draws its seed's identifying
    values from it)."""
    from labaug.data.images import make_task, write_task
    from labaug.data.raw import load_npz

    part = slices.task_slice(config, variance)
    start = time.perf_counter()
    task = make_task(load_npz(raw_path), pair, variance, float(part["image"]["gamma"]),
                     low_noise_of(part, variance))
    write_task(task, out)
    log.info("%s pair %s (%s), %s: %d train / %d test images, %d features, gamma %g; wrote %s "
             "in %.1f s", dataset, list(pair), task.task.classes, variance,
             len(task.task.y_train), len(task.task.y_test), task.task.n_features, task.gamma,
             out, time.perf_counter() - start)


def aggregate_job(config: Mapping[str, Any], inputs: Sequence[PathLike], out: PathLike,
                  experiment: augment.Experiment) -> None:
    """Combine per-seed files into one experiment file, methods (and models) in config order
    (``config``: the slice `labaug.slices.methods_slice` or the whole config)."""
    methods = augment.for_experiment(list(config["methods"]), experiment)
    models = config["resnet"]["models"] if experiment == "class_channels" else None
    ds = aggregate_files(inputs, out, methods=methods, models=models)
    log.info("aggregated %d files into %s: %s", len(inputs), out, dict(ds.sizes))


def figure_job(figure: str, inputs: Mapping[str, PathLike], out: PathLike) -> None:
    """Draw ``figure`` (a function name in labaug.plots) from its named input files."""
    from labaug import plots

    draw = getattr(plots, figure, None)
    if draw is None or not callable(draw):
        raise ValueError(f"labaug.plots has no figure function {figure!r}")
    draw(out=out, **dict(inputs))
    log.info("drew %s from %s", out, ", ".join(str(p) for p in inputs.values()))


# --- ResNet-18 with class channels (Sec. 4.3, Fig. 4 and 5) -------------------------------


def resnet_run_config(part: Mapping[str, Any], dataset: str, model: str, method: Method,
                      device: str, checkpoint_minutes: float) -> ResNetConfig:
    """The ResNetConfig of one run from its slice (`labaug.slices.resnet_slice`): ``datasets``,
    ``models`` and ``hp`` hold only this run's (its one value), ``device`` is the run's device
    and ``runs_per_gpu`` (a scheduling setting of the workflow, not of a run) is 1. Settings the
    model does not read (a ResNet's ``mlp_hidden``) are not in the slice: 0 and () here."""
    from labaug.config import hp_values

    r = part["resnet"]
    return ResNetConfig(
        datasets=(dataset,), models=(model,), width=int(r.get("width", 0)),
        mlp_hidden=tuple(int(h) for h in r.get("mlp_hidden", ())),
        hp={method: hp_values(part["resnet"].get("hp", {}), method)[:1]},
        channel_sigma=r["channel_sigma"], train_subset=r["train_subset"],
        test_subset=r["test_subset"], diagnosis_subset=int(r["diagnosis_subset"]),
        epochs=r["epochs"], batch_size=r["batch_size"],
        device=device,  # type: ignore[arg-type]
        precision=r["precision"], compile=bool(r["compile"]), runs_per_gpu=1,
        checkpoint_minutes=float(checkpoint_minutes))


def resnet_job(config: Mapping[str, Any], dataset: str, method: Method, seed: int,
               out: PathLike, raw_path: PathLike, threads: int = 1, device: str | None = None,
               rule: str = "train_resnet", checkpoint_minutes: float | None = None,
               device_setting: str | None = None, model: str | None = None,
               grid: int = 0, checkpoint: PathLike | None = None) -> None:
    """Train one class-channel run (resuming from its checkpoint) and write its per-seed netCDF.

    The run: ``model`` (default: the first of ``resnet.models``), ``method`` at its ``grid``-th
    value of ``resnet.hp.<method>``, ``seed``, on ``dataset``.
    ``config``: the run's slice (`labaug.slices.resnet_slice`) or the whole config;
    ``checkpoint_minutes`` and ``device_setting`` (None = resnet.checkpoint_minutes and
    resnet.device of a whole config) are not part of the slice since they change no number.
    ``device`` is the run's device as the workflow resolved it once for the whole DAG
    (`labaug.devices.resolve_device` of ``resnet.device``); None resolves it here. A cuda run
    that finds no GPU fails before anything else, naming ``rule``, the run and the key. The
    checkpoint is ``checkpoint`` (the workflow passes {output_root}/checkpoints/...; default
    `labaug.train.checkpoints.checkpoint_path` of ``out``), locked while the run trains; once the
    result is written and read back, it shrinks to the run's final state, from which a rerun
    with the same fingerprint rebuilds the result without training.
    ``LABAUG_INJECT_NAN`` (see labaug.train.resnet) can make this
    run fail. On a machine that sees several GPUs, a cuda run trains on a GPU of its own
    (`labaug.devices.job_gpu`).
    """
    import torch

    from labaug.data.channels import load_class_channel_data
    from labaug.models import describe_model
    from labaug.results import resnet_job_dataset
    from labaug.train.checkpoints import checkpoint_lock, checkpoint_path, finalize_checkpoint
    from labaug.train.resnet import NonFiniteLossError, ResNetRun, ResNetTrainer, train_resnet

    part = slices.resnet_slice(config, method, model, grid)
    model = str(part["resnet"]["models"][0])
    if checkpoint_minutes is None:
        checkpoint_minutes = float(config["resnet"]["checkpoint_minutes"])
    if device_setting is None:
        device_setting = str(config["resnet"].get("device", device or "auto"))
    run = ResNetRun(dataset, method, seed, model=model, grid=grid)
    setting = str(config["resnet"].get("device", "auto")) if device is None else device
    resolved = checked_device(resolve_device(setting), "resnet", rule, str(run))
    r = resnet_run_config(part, dataset, model, method, resolved, checkpoint_minutes)
    o = part["optim"]
    optim = optim_config({**o, "epochs": o["epochs"] if r.epochs is None else r.epochs,
                          "batch_size": o["batch_size"] if r.batch_size is None
                          else r.batch_size})
    from labaug.train.inject import injected_nan_epoch

    nan_epoch = injected_nan_epoch(run)
    torch.set_num_threads(threads)
    start = time.perf_counter()
    data = load_class_channel_data(raw_path, dataset, seed, sigma=r.channel_sigma,
                                   train_subset=r.train_subset, test_subset=r.test_subset)
    description = describe_model(model, r.width, r.mlp_hidden)
    log.info("%s: %d train / %d test images of shape %s, %d classes, class-vector sigma %.4g, "
             "%s, %s = %g, device %s", dataset, len(data.y_train), len(data.y_test),
             tuple(data.x_train.shape[1:]), data.num_classes, data.sigma, description, method,
             r.values(method)[0], resolved)
    ckpt = Path(checkpoint) if checkpoint is not None else checkpoint_path(out)
    trainers: list[ResNetTrainer] = []
    with checkpoint_lock(ckpt), job_gpu(resolved) as gpu:
        if gpu:
            log.info("%s: training on %s, %s", run, gpu, device_name(resolved))
        try:
            history = train_resnet(data, run, optim, r, mix_per_batch=bool(
                                   part.get("mix_per_batch", False)), device=resolved,
                                   checkpoint=ckpt, nan_epoch=nan_epoch, trainer_out=trainers)
        except NonFiniteLossError as err:
            log.error("%s", err)    # into the rule's log too, not only the job's stderr
            raise
        trainer = trainers[0]
        attrs = provenance(part, seed=seed, device=resolved,
                           precision=trainer.precision)
        attrs.update({"device_setting": device_setting, "compiled": int(trainer.compiled),
                      "dataset": dataset, "model_description": description,
                      "width": r.width, "class_channel_sigma": data.sigma,
                      "n_train": len(data.y_train), "n_test": len(data.y_test),
                      "n_diagnosis": trainer.n_diagnosis, "num_classes": data.num_classes,
                      "mix_per_batch": int(bool(part.get("mix_per_batch", False))),
                      **fingerprint_attrs(history.fingerprint), "trained_on": history.trained_on})
        write_netcdf(resnet_job_dataset(model, method, grid, trainer.value, seed, history.epoch,
                                        history.metrics, attrs), out)
        finalize_checkpoint(ckpt)
    log.info("wrote %s in %.1f s", out, time.perf_counter() - start)


def fingerprint_attrs(fingerprint: Mapping[str, Any]) -> dict[str, str]:
    """A run's fingerprint as result attributes: the whole (JSON) and its sha256."""
    import json

    from labaug.fingerprint import digest

    return {"run_fingerprint": json.dumps(fingerprint, sort_keys=True),
            "run_fingerprint_sha256": digest(fingerprint)}


def class_channel_example_job(config: Mapping[str, Any], dataset: str, raw_path: PathLike,
                              out: PathLike, index: int = 0) -> None:
    """Write the Fig. 5 example: one training image, its class vector, train and test inputs
    (``config``: the slice `labaug.slices.example_slice` or the whole config)."""
    import numpy as np
    import torch
    import xarray as xr

    from labaug.data.channels import (
        load_class_channel_data,
        with_class_channels,
        with_zero_channels,
    )
    from labaug.data.raw import load_npz
    from labaug.results import write_netcdf

    part = slices.example_slice(config)
    seed = int(part["seeds"][0])
    r = part["resnet"]
    data = load_class_channel_data(raw_path, dataset, seed, sigma=r["channel_sigma"],
                                   train_subset=r["train_subset"], test_subset=r["test_subset"])
    pixels = load_npz(raw_path).x_train[index]
    # uint8 pixels as [0, 1]; a user's float images as they are (the figure clips to [0, 1]).
    image = pixels.astype(np.float64) / (255.0 if pixels.dtype == np.uint8 else 1.0)
    label = int(data.y_train[index])
    x = torch.as_tensor(data.x_train[index:index + 1])
    train_input = with_class_channels(x, torch.as_tensor(data.y_train[index:index + 1]),
                                      torch.as_tensor(data.class_vectors))[0].numpy()
    test_input = with_zero_channels(x)[0].numpy()
    dims, in_dims = ("channel", "row", "col"), ("input_channel", "row", "col")
    ds = xr.Dataset(
        {
            "image": (dims, image, {"long_name": "training image, pixel values in [0, 1]"}),
            "standardized_image": (dims, data.x_train[index].astype(np.float64),
                                   {"long_name": "the image standardized per channel"}),
            "class_vector": (dims, data.class_vectors[label].astype(np.float64),
                             {"long_name": "the class vector of the image's class"}),
            "train_input": (in_dims, train_input.astype(np.float64),
                            {"long_name": "training input: image and class-vector channels"}),
            "test_input": (in_dims, test_input.astype(np.float64),
                           {"long_name": "test input: image and all-zero channels"}),
        },
        attrs={**provenance(part, seed=seed), "dataset": dataset,
               "index": index, "label": label, "class_name": data.classes[label],
               "class_channel_sigma": data.sigma},
    )
    write_netcdf(ds, out)
    log.info("wrote the class-channel example of %s (image %d, class %s) to %s", dataset,
             index, data.classes[label], out)


SHARED_DATA = Path("data") / "shared"
"""Where prepared raw datasets are kept once for every output root (`fetch_job`)."""


def fetch_job(config: Mapping[str, Any], dataset: str, out_npz: PathLike,
              allow_download: bool | None = None,
              shared: PathLike = SHARED_DATA) -> RawImages:
    """Acquire one raw dataset: a built-in one with the source directory and checksums of
    ``config`` (its slice, `labaug.slices.fetch_slice`, or the whole config; ``data_checksums``:
    {dataset: {file name: hex digest}} replaces the official checksums, for a repackaged mirror
    or generated archives in tests), or a user's from its ``datasets.<name>`` entry;
    ``allow_download`` None = the whole config's ``allow_download``.

    The dataset is prepared once for every output root: under ``shared``, named by the
    checksums its files were verified against, or, for a user's files without published
    checksums, by the sha256 of the files read (`labaug.data.raw.prepared_name`; the log names
    the files that changed since the last preparation), by one process at a time (a lock: roots
    started together wait for each other instead of failing), and then linked to ``out_npz``,
    this root's own file. A failure here removes at most this root's file, never the shared
    one."""
    from labaug import datasets
    from labaug.data.raw import load_npz, prepared_name, read_sources, save_npz
    from labaug.datasets.formats import parse
    from labaug.datasets.user import directory_of, files_of
    from labaug.io import locked

    part = slices.fetch_slice(config, dataset)
    if allow_download is None:
        allow_download = bool(config["allow_download"])
    spec = datasets.get(dataset, part)
    payload: dict[str, bytes] | None = None
    digests: dict[str, str] = {}
    if spec.builtin:
        checksums = part.get("data_checksums", {}).get(dataset)
        spec = spec.with_digests(checksums) if checksums else spec
        source = part["data_sources"][dataset]
        prepared = Path(shared) / prepared_name(spec)
    else:
        entry = part["datasets"][dataset]
        spec = replace(spec, files=files_of(spec, entry.get("checksums")))
        source = str(directory_of(spec))
        payload, digests = read_sources(spec, source, allow_download, shared)
        report_changes(Path(shared), spec, digests)
        prepared = Path(shared) / prepared_name(spec, digests)
    with locked(prepared.with_name(prepared.name + ".lock")):
        raw = None
        if prepared.exists():
            try:
                raw = load_npz(prepared)
                log.info("%s: %s was prepared before from the same files; reusing it", dataset,
                         prepared)
            except CorruptFileError as err:
                log.warning("%s: %s is unreadable (%s); preparing it again", dataset, prepared,
                            err.reason)
                quarantine(prepared)
        if raw is None:
            if payload is None:
                payload, digests = read_sources(spec, source, allow_download, shared)
            raw = parse(spec, payload)
            save_npz(raw, prepared, digests)
            log.info("%s: prepared %s (%d train, %d test images of shape %s, %d classes: %s)",
                     dataset, prepared, len(raw.y_train), len(raw.y_test),
                     tuple(raw.x_train.shape[1:]), len(raw.classes),
                     ", ".join(raw.classes[:10]) + (", ..." if len(raw.classes) > 10 else ""))
    publish(prepared, out_npz)
    log.info("%s: %s is %s", dataset, out_npz, prepared)
    return raw


def report_changes(shared: Path, spec: Any, digests: Mapping[str, str]) -> None:
    """Log the sha256 of every file of a user's dataset, and which files changed, appeared or
    went away since its last preparation (kept in ``shared``, per dataset and path)."""
    import hashlib
    import json

    record = shared / (f"{spec.name}-{hashlib.sha256(str(spec.path).encode()).hexdigest()[:8]}"
                       ".sources.json")
    before: dict[str, str] = {}
    if record.exists():
        try:
            before = dict(json.loads(record.read_text()))
        except (OSError, ValueError):
            before = {}
    for name, digest in sorted(digests.items()):
        log.info("%s: %s sha256 %s", spec.name, name, digest)
    if before:
        changed = [n for n in digests if n in before and before[n] != digests[n]]
        added = [n for n in digests if n not in before]
        removed = [n for n in before if n not in digests]
        for words, names in (("changed", changed), ("new", added), ("gone", removed)):
            if names:
                log.warning("%s: %d file(s) %s since the last preparation: %s", spec.name,
                            len(names), words, ", ".join(sorted(names)[:20])
                            + (", ..." if len(names) > 20 else ""))
        if not (changed or added or removed):
            log.info("%s: the files are the ones of the last preparation", spec.name)
    from labaug.io import atomic_path

    with atomic_path(record) as tmp:
        tmp.write_text(json.dumps(dict(digests), sort_keys=True, indent=1))


def theory_job(config: Mapping[str, Any], variance: Variance, out: PathLike) -> xr.Dataset:
    """Compute the exact minimizers for one synthetic variant and write them with provenance
    (``config``: the slice `labaug.slices.theory_slice` or the whole config)."""
    from labaug.exact import theory_dataset

    part = slices.theory_slice(config, variance)
    tcfg = theory_config(part["theory"])
    start = time.perf_counter()
    ds = theory_dataset(synthetic_config(part["synthetic"]), part["methods"],
                        {m: grid_config(g) for m, g in part["grids"].items()},
                        low_noise_of(part, variance), variance, tcfg)
    ds.attrs.update(provenance(part, seed=tcfg.seed, device="cpu"))
    ds.attrs.update({"data": "synthetic"})
    write_netcdf(ds, out)
    log.info("wrote %s in %.1f s", out, time.perf_counter() - start)
    return ds


def summary_job(inputs: Mapping[str, PathLike], out: PathLike, command: str = "") -> None:
    """Write results/summary.md from named inputs 'linear_{data}_{variance}',
    'theory_{variance}' and 'resnet_{dataset}' (labaug.summary)."""
    from labaug.summary import write_summary

    groups: dict[str, dict[str, PathLike]] = {"linear": {}, "theory": {}, "resnet": {}}
    for key, path in inputs.items():
        kind, _, name = key.partition("_")
        groups[kind][name] = path
    write_summary(out, groups["linear"], groups["theory"], groups["resnet"], command=command)
    log.info("wrote %s from %d result files", out, len(inputs))


def pair_difficulty_job(config: Mapping[str, Any], dataset: str, raw_path: PathLike,
                        out: PathLike) -> None:
    """Measure how hard every class pair of ``dataset`` is for plain logistic regression.

    ``config``: the job's slice (`labaug.slices.pairs_slice`) or the whole config."""
    import torch

    from labaug.data.raw import load_npz
    from labaug.pairs import difficulty_table, pair_difficulty

    part = slices.pairs_slice(config)
    seed = int(part["seeds"][0])
    torch.set_num_threads(1)
    ds = pair_difficulty(load_npz(raw_path), optim_config(part["optim"]), seed=seed)
    ds.attrs.update({**provenance(part, seed=seed, device="cpu"),
                     "dataset": dataset})
    write_netcdf(ds, out)
    log.info("%s class pairs, hardest first:\n%s", dataset, difficulty_table(ds))
