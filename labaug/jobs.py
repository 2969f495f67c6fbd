"""Every workflow job's entry point: what a Snakemake script calls, testable without Snakemake."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch

from labaug import augment
from labaug.config import Config, Method, Variance, from_dict
from labaug.data import LinearData
from labaug.data.synthetic import high_block, low_block, make_synthetic
from labaug.devices import DEVICE_KEYS, require_device, resolve_device
from labaug.metrics import block_norm, pixel_ratio
from labaug.models import describe_model
from labaug.results import aggregate_files, linear_job_dataset, provenance, write_netcdf
from labaug.train.linear import train_sweep

if TYPE_CHECKING:
    import xarray as xr

    from labaug.data.raw import RawImages

log = logging.getLogger("labaug")

PathLike = str | os.PathLike[str]


def setup_logging(log_path: PathLike | None) -> None:
    """Send labaug's progress lines to the rule's log file (and stderr when there is none)."""
    handler: logging.Handler = (logging.FileHandler(log_path, mode="w") if log_path
                                else logging.StreamHandler(sys.stderr))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("labaug")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def linear_data(cfg: Config, data: str, variance: Variance, seed: int,
                raw_path: PathLike | None) -> LinearData:
    """The training/test split of one linear experiment for one seed."""
    if data == "synthetic":
        return make_synthetic(cfg.synthetic, seed, variance, cfg.low_noise)
    from labaug.data.images import make_binary
    from labaug.data.raw import load_npz

    if raw_path is None:
        raise ValueError(f"linear experiment on {data!r} needs its raw npz")
    return make_binary(load_npz(raw_path), seed, variance, cfg.image_gamma, cfg.low_noise,
                       cfg.image_pairs[data])


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
               seed: int, out: PathLike, raw_path: PathLike | None = None,
               threads: int = 1, rule: str = "linear_sweep") -> None:
    """Train one method's whole grid for one seed and write its per-seed netCDF."""
    cfg = from_dict(config)
    job = f"data={data} variance={variance} method={method} seed={seed}"
    device = checked_device(cfg.linear.device, "linear", rule, job)
    torch.set_num_threads(threads)
    start = time.perf_counter()
    dataset = linear_data(cfg, data, variance, seed, raw_path)
    log.info("%s_%s: %d train / %d test points, %d features%s", data, variance,
             len(dataset.y_train), len(dataset.y_test), dataset.n_features,
             f", classes {dataset.classes}" if dataset.classes else "")
    result = train_sweep(dataset, method, cfg.grid(method), seed, cfg.optim,
                         mix_per_batch=cfg.mix_per_batch, device=device)
    variables = {
        "test_error": (result.test_error, "test error (fraction misclassified)"),
        "train_loss": (result.train_loss,
                       "mean training loss over the last epoch, under the method's own "
                       "objective, without the weight-decay penalty"),
    }
    if data == "synthetic":
        variables["w_high_norm"] = (block_norm(result.weights, high_block(cfg.synthetic)),
                                    "norm of the weights on the high-variance block")
        variables["w_low_norm"] = (block_norm(result.weights, low_block(cfg.synthetic)),
                                   "norm of the weights on the low-variance block")
    else:
        variables["pixel_ratio"] = (pixel_ratio(result.weights),
                                    "|w_1| / ||w_2:||, identifying pixel weight over the rest")
    ds = linear_job_dataset(method, seed, result.hp_values, result.weights, variables,
                            provenance(cfg, seed=seed, device=device))
    ds.attrs.update({"data": data, "variance": variance})
    if data != "synthetic":
        ds.attrs.update({"class_pair": dataset.classes,
                         "class_pair_indices": list(cfg.image_pairs[data])})
    write_netcdf(ds, out)
    log.info("wrote %s in %.1f s", out, time.perf_counter() - start)


def aggregate_job(config: Mapping[str, Any], inputs: Sequence[PathLike], out: PathLike,
                  experiment: augment.Experiment) -> None:
    """Combine per-seed files into one experiment file, methods in config order."""
    cfg = from_dict(config)
    ds = aggregate_files(inputs, out, methods=augment.for_experiment(cfg.methods, experiment))
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


def resnet_job(config: Mapping[str, Any], dataset: str, method: Method, seed: int,
               out: PathLike, raw_path: PathLike, threads: int = 1, device: str | None = None,
               rule: str = "train_resnet") -> None:
    """Train one ResNet-18 run (resuming from its checkpoint) and write its per-seed netCDF.

    ``device`` is the run's device as the workflow resolved it once for the whole DAG
    (`labaug.devices.resolve_device` of ``resnet.device``); None resolves it here. A cuda run
    that finds no GPU fails before anything else, naming ``rule``, the run and the key. The
    checkpoint is `labaug.train.resnet.checkpoint_path` of ``out`` (checkpoints/...
    mirroring results/...); it is removed once the result is written. ``LABAUG_INJECT_NAN``
    (see labaug.train.resnet) can make this run fail.
    """
    from labaug.data.channels import load_class_channel_data
    from labaug.results import resnet_job_dataset
    from labaug.train.resnet import (
        NonFiniteLossError,
        ResNetRun,
        ResNetTrainer,
        checkpoint_path,
        injected_nan_epoch,
        train_resnet,
    )

    cfg = from_dict(config)
    run = ResNetRun(dataset, method, seed)
    r = cfg.resnet
    resolved = checked_device(resolve_device(r.device) if device is None else device, "resnet",
                              rule, str(run))
    torch.set_num_threads(threads)
    start = time.perf_counter()
    data = load_class_channel_data(raw_path, dataset, seed, sigma=r.channel_sigma,
                                   train_subset=r.train_subset, test_subset=r.test_subset)
    log.info("%s: %d train / %d test images of shape %s, %d classes, class-vector sigma %.4g, "
             "width %d, device %s (resnet.device: %s)", dataset, len(data.y_train),
             len(data.y_test), tuple(data.x_train.shape[1:]), data.num_classes, data.sigma,
             r.width, resolved, r.device)
    ckpt = checkpoint_path(out)
    trainers: list[ResNetTrainer] = []
    try:
        history = train_resnet(data, run, r.optim_for(cfg.optim), r,
                               mix_per_batch=cfg.mix_per_batch, device=resolved,
                               checkpoint=ckpt, nan_epoch=injected_nan_epoch(run),
                               trainer_out=trainers)
    except NonFiniteLossError as err:
        log.error("%s", err)    # into the rule's log too, not only the job's stderr
        raise
    variables = {
        "test_error": (history.test_error,
                       "test error (fraction misclassified; test inputs carry zero class "
                       "channels)"),
        "train_loss": (history.train_loss,
                       "mean training loss over the epoch under the method's own objective "
                       "(soft-target cross-entropy), without the weight-decay term"),
        "train_error": (history.train_error,
                        "training error over the epoch's batches: predicted class differs from "
                        "the dominant class of the (augmented) target"),
    }
    trainer = trainers[0]
    attrs = provenance(cfg, seed=seed, device=resolved, precision=trainer.precision)
    attrs.update({"device_setting": r.device, "compiled": int(trainer.compiled),
                  "dataset": dataset, "model": describe_model(r.model, r.width, r.mlp_hidden),
                  "width": r.width, "class_channel_sigma": data.sigma,
                  "n_train": len(data.y_train), "n_test": len(data.y_test),
                  "hp_value": r.hp[method], "mix_per_batch": int(cfg.mix_per_batch)})
    write_netcdf(resnet_job_dataset(method, seed, history.epoch, variables, attrs), out)
    ckpt.unlink(missing_ok=True)
    log.info("wrote %s in %.1f s", out, time.perf_counter() - start)


def class_channel_example_job(config: Mapping[str, Any], dataset: str, raw_path: PathLike,
                              out: PathLike, index: int = 0) -> None:
    """Write the Fig. 5 example: one training image, its class vector, train and test inputs."""
    import numpy as np
    import xarray as xr

    from labaug.data.channels import (
        load_class_channel_data,
        with_class_channels,
        with_zero_channels,
    )
    from labaug.data.raw import load_npz
    from labaug.results import write_netcdf

    cfg = from_dict(config)
    seed = cfg.seeds[0]
    r = cfg.resnet
    data = load_class_channel_data(raw_path, dataset, seed, sigma=r.channel_sigma,
                                   train_subset=r.train_subset, test_subset=r.test_subset)
    image = load_npz(raw_path).x_train[index].astype(np.float64) / 255.0
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
        attrs={**provenance(cfg, seed=seed), "dataset": dataset, "index": index,
               "label": label, "class_name": data.classes[label],
               "class_channel_sigma": data.sigma},
    )
    write_netcdf(ds, out)
    log.info("wrote the class-channel example of %s (image %d, class %s) to %s", dataset,
             index, data.classes[label], out)


def fetch_job(config: Mapping[str, Any], dataset: str, out_npz: PathLike) -> RawImages:
    """Acquire one raw dataset with the source directory, download permission and checksums
    from config (``data_checksums``: {dataset: {file name: hex digest}} replaces the official
    checksums, for a repackaged mirror or generated archives in tests)."""
    from labaug.data.raw import fetch

    cfg = from_dict(config)
    return fetch(dataset, cfg.data_sources.get(dataset), cfg.allow_download, out_npz,
                 checksums=cfg.data_checksums.get(dataset))


def theory_job(config: Mapping[str, Any], variance: Variance, out: PathLike) -> xr.Dataset:
    """Compute the exact minimizers for one synthetic variant and write them with provenance."""
    from labaug.exact import theory_dataset

    cfg = from_dict(config)
    start = time.perf_counter()
    ds = theory_dataset(cfg, variance, cfg.theory)
    ds.attrs.update(provenance(cfg, seed=cfg.theory.seed, device="cpu"))
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
    """Measure how hard every class pair of ``dataset`` is for plain logistic regression."""
    from labaug.data.raw import load_npz
    from labaug.pairs import difficulty_table, pair_difficulty

    cfg = from_dict(config)
    torch.set_num_threads(1)
    ds = pair_difficulty(load_npz(raw_path), cfg.optim, seed=cfg.seeds[0])
    ds.attrs.update({**provenance(cfg, seed=cfg.seeds[0], device="cpu"), "dataset": dataset})
    write_netcdf(ds, out)
    log.info("%s class pairs, hardest first:\n%s", dataset, difficulty_table(ds))
