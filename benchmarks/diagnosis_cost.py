"""What the per-epoch diagnosis costs: its seconds beside an epoch's training and test pass.

Each class-channel run measures, after every epoch, the paper's test error and the diagnosis of
`labaug.train.evaluation` (recalibrated test error, channel following, feature-variance ratio).
This trains each model alone on one device for a warm-up epoch and ``--epochs`` timed ones and
prints, per model, the seconds of training, of the paper's test pass and of the diagnosis, and
the diagnosis's share of the rest of the epoch (the most it may add is about 15%):

    python benchmarks/diagnosis_cost.py                        # the CPU diagnosis preset's sizes
    python benchmarks/diagnosis_cost.py --device cuda --width 64 --train-subset 0 \\
        --test-subset 0 --diagnosis-subset 2000 --batch-size 500   # the GPU preset's

Data: Fashion-MNIST from ``--source`` (a directory with its four official files; default
config.yaml's data_sources.fmnist). ``--json PATH`` writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:    # labaug from this checkout, also where it is not installed
    sys.path.insert(0, str(REPO))

from labaug import models  # noqa: E402
from labaug.config import default_dict, defaults  # noqa: E402
from labaug.data.channels import class_channel_data  # noqa: E402
from labaug.data.raw import fetch  # noqa: E402
from labaug.train.resnet import ResNetRun, ResNetTrainer  # noqa: E402


def synced(device: torch.device) -> float:
    """perf_counter after the device has finished its queued work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def measure(trainer: ResNetTrainer, epochs: int) -> dict[str, float]:
    """Seconds per epoch of training, the test pass and the diagnosis (after one warm-up)."""
    trainer.train_epoch()
    trainer.test_error()
    trainer.diagnose()
    total = {"train": 0.0, "test": 0.0, "diagnosis": 0.0}
    dev = trainer.device
    for _ in range(epochs):
        t0 = synced(dev)
        trainer.train_epoch()
        t1 = synced(dev)
        trainer.test_error()
        t2 = synced(dev)
        trainer.diagnose()
        t3 = synced(dev)
        total["train"] += t1 - t0
        total["test"] += t2 - t1
        total["diagnosis"] += t3 - t2
    out = {k: v / epochs for k, v in total.items()}
    out["share"] = out["diagnosis"] / (out["train"] + out["test"])
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (``argv`` None: sys.argv)."""
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--source", type=Path, default=None,
                   help="directory with Fashion-MNIST's four files (default: config.yaml's)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--models", nargs="+", default=list(models.names()))
    p.add_argument("--method", default="weight_decay")
    p.add_argument("--width", type=int, default=4)
    p.add_argument("--mlp-hidden", type=int, nargs="+", default=[256])
    p.add_argument("--train-subset", type=int, default=10_000, help="0 = every image")
    p.add_argument("--test-subset", type=int, default=1_000, help="0 = every image")
    p.add_argument("--diagnosis-subset", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, default=None)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Measure every model; print the table and return the numbers."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    source = args.source or Path(default_dict()["data_sources"]["fmnist"])
    with tempfile.TemporaryDirectory() as tmp:
        raw = fetch("fmnist", str(source), False, Path(tmp) / "fmnist.npz")
    data = class_channel_data(raw, "fmnist", 0, train_subset=args.train_subset or None,
                              test_subset=args.test_subset or None)
    optim = replace(defaults().optim, batch_size=args.batch_size)
    out: dict[str, Any] = {"device": args.device, "images": len(data.y_train),
                           "test_images": len(data.y_test), "models": {}}
    if args.device.startswith("cuda"):
        out["gpu"] = torch.cuda.get_device_name(0)
    print(f"{len(data.y_train)} training / {len(data.y_test)} test images, diagnosis on "
          f"{args.diagnosis_subset}, batch {args.batch_size}, {args.epochs} timed epoch(s), "
          f"{args.device}{' (' + out['gpu'] + ')' if 'gpu' in out else ''}", flush=True)
    print("| model | train s | test s | diagnosis s | diagnosis / (train + test) |")
    print("|---|---:|---:|---:|---:|")
    for name in args.models:
        resnet = replace(defaults().resnet, models=(name,), width=args.width,
                         mlp_hidden=tuple(args.mlp_hidden),
                         diagnosis_subset=args.diagnosis_subset)
        trainer = ResNetTrainer(data, ResNetRun("fmnist", args.method, 0, model=name), optim,
                                resnet, device=args.device)
        row = measure(trainer, args.epochs)
        out["models"][name] = row
        print(f"| {name} | {row['train']:.3f} | {row['test']:.3f} | {row['diagnosis']:.3f} | "
              f"{row['share']:.1%} |", flush=True)
        if args.json is not None:
            args.json.write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
