"""How hard each class pair is for a linear model: the guide for choosing ``image.pairs``.

For every pair of classes of a raw dataset, plain logistic regression (no bias, no identifying
pixel, no augmentation, no weight decay) is trained on the pair's binary task with the
protocol's optimizer, and its test error measures how far from linearly separable the pair is.
The paper's CIFAR pair is hard for a linear model; Fashion-MNIST's first pair (T-shirt/top vs
Trouser) is nearly separable, so its binary figures show the paper's effect only weakly.

    snakemake results/pairs/fmnist.nc             # the workflow's rule (protocol optimizer)
    python -m labaug.pairs data/raw/fmnist.npz    # the same, printing the table
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import time
from dataclasses import replace

import numpy as np
import xarray as xr

from labaug.config import OptimConfig, defaults
from labaug.data.images import binary_task
from labaug.data.raw import RawImages, load_npz
from labaug.train.linear import train_sweep

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


def pair_difficulty(raw: RawImages, optim: OptimConfig, seed: int = 0,
                    pairs: list[tuple[int, int]] | None = None) -> xr.Dataset:
    """Test and training error of plain logistic regression on every pair (or ``pairs``)."""
    chosen = pairs or list(itertools.combinations(range(len(raw.classes)), 2))
    test_error, train_error = [], []
    for a, b in chosen:
        start = time.perf_counter()
        task = binary_task(raw, (a, b))
        result = train_sweep(task, "weight_decay", [0.0], seed, optim)
        w = result.weights[0]
        train_error.append(float(np.mean(np.sign(task.x_train @ w) != task.y_train)))
        test_error.append(float(result.test_error[0]))
        log.info("%s: test error %.4f, train error %.4f (%.1f s)", task.classes,
                 test_error[-1], train_error[-1], time.perf_counter() - start)
    names = [f"{raw.classes[a]} vs {raw.classes[b]}" for a, b in chosen]
    return xr.Dataset(
        {
            "test_error": ("pair", np.asarray(test_error),
                           {"long_name": "test error of plain logistic regression (no bias, "
                                         "no identifying pixel, no regularization)"}),
            "train_error": ("pair", np.asarray(train_error),
                            {"long_name": "its training error"}),
        },
        coords={
            "pair": np.arange(len(chosen)),
            "class_a": ("pair", np.asarray([a for a, _ in chosen]),
                        {"long_name": "class index of label -1"}),
            "class_b": ("pair", np.asarray([b for _, b in chosen]),
                        {"long_name": "class index of label +1"}),
            "names": ("pair", np.asarray(names, dtype=object)),
        },
        attrs={"seed": seed, "epochs": optim.epochs, "batch_size": optim.batch_size,
               "lr": optim.lr},
    )


def difficulty_table(ds: xr.Dataset) -> str:
    """The pairs as a Markdown table, hardest (highest test error) first."""
    order = np.argsort(-ds["test_error"].values, kind="stable")
    lines = ["| pair (indices) | classes | test error | train error |", "|---|---|---|---|"]
    for i in order:
        lines.append(f"| [{int(ds['class_a'][i])}, {int(ds['class_b'][i])}] | "
                     f"{ds['names'].values[i]} | {float(ds['test_error'][i]):.4f} | "
                     f"{float(ds['train_error'][i]):.4f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Command line: measure every pair of one raw npz and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw", help="data/raw/{dataset}.npz")
    parser.add_argument("--epochs", type=int, default=None,
                        help="training epochs (default: config.yaml's optim.epochs)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    optim = defaults().optim
    if args.epochs is not None:
        optim = replace(optim, epochs=args.epochs)
    ds = pair_difficulty(load_npz(args.raw), optim, args.seed)
    print(difficulty_table(ds))


if __name__ == "__main__":
    main()
