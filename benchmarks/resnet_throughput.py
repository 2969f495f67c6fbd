"""Benchmark: training images/s of the ResNet trainer against a naive pipeline, same device.

The naive pipeline is written the way research code usually is: a per-item Dataset whose
``__getitem__`` concatenates the image and its class vector (numpy -> torch), a torch DataLoader
with default workers, and an fp32 training loop. The trainer keeps the dataset on the device as
one tensor, takes batches by index and concatenates class channels there; on CUDA it also runs
channels_last under bf16 autocast. Both train the same CIFAR-shaped ResNet-18 (weight-decay
method) on the same generated data, in this one process.

    python benchmarks/resnet_throughput.py                               # CUDA if present
    python benchmarks/resnet_throughput.py --device cpu --width 4 --images 1000 --batch-size 100

On CUDA it also prints the absolute img/s and the projected wall time of one 100-epoch,
50,000-image run. ``--full-run`` then trains one whole run with the real trainer loop
(per-epoch test error and checkpoints included) and prints its wall time:

    python benchmarks/resnet_throughput.py --images 50000 --full-run 100
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from labaug.config import OptimConfig, defaults
from labaug.data.channels import ClassChannelData, class_channel_data
from labaug.data.raw import RawImages
from labaug.models import resnet18
from labaug.rng import numpy_rng, torch_rng
from labaug.train.resnet import ResNetRun, ResNetTrainer, train_resnet


def generated(n: int, shape: tuple[int, int, int], classes: int) -> ClassChannelData:
    """CIFAR-shaped random uint8 images and labels, standardized, with class vectors."""
    rng = numpy_rng(0, "benchmark", "resnet")
    x = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
    y = rng.integers(0, classes, size=n).astype(np.int64)
    raw = RawImages(x, y, x[:1000], y[:1000], tuple(str(k) for k in range(classes)))
    return class_channel_data(raw, "benchmark", 0)


def sync(device: torch.device) -> None:
    """Wait for queued device work, so wall time measures it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def trainer_img_s(data: ClassChannelData, optim: OptimConfig, width: int, device: str,
                  epochs: int, compile_model: bool) -> float:
    """Training images/s of labaug's ResNetTrainer (after one warm-up epoch)."""
    tr = ResNetTrainer(data, ResNetRun("benchmark", "weight_decay", 0), optim,
                       replace(defaults().resnet, width=width), device=device,
                       compile_model=compile_model)
    tr.train_epoch()
    dev = torch.device(device)
    sync(dev)
    t0 = time.perf_counter()
    for _ in range(epochs):
        tr.train_epoch()
    sync(dev)
    return epochs * len(data.y_train) / (time.perf_counter() - t0)


class ConcatDataset(Dataset[tuple[torch.Tensor, int]]):
    """The naive way: one item at a time, the class vector concatenated in __getitem__."""

    def __init__(self, data: ClassChannelData) -> None:
        self.x, self.y, self.v = data.x_train, data.y_train, data.class_vectors

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        label = int(self.y[i])
        return torch.from_numpy(np.concatenate([self.x[i], self.v[label]], axis=0)), label


def naive_img_s(data: ClassChannelData, optim: OptimConfig, width: int, device: str,
                epochs: int) -> float:
    """Training images/s of the naive pipeline: DataLoader, per-item concat, fp32."""
    dev = torch.device(device)
    model = resnet18(data.in_channels, data.num_classes, width, torch_rng(0, "init"), dev)
    opt = torch.optim.Adam(model.parameters(), lr=optim.lr, weight_decay=5e-4)
    loader = DataLoader(ConcatDataset(data), batch_size=optim.batch_size, shuffle=True,
                        generator=torch_rng(0, "benchmark", "naive"))

    def epoch() -> None:
        model.train()
        for x, y in loader:
            x, y = x.to(dev), y.to(dev)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            torch.autograd.backward(loss)
            opt.step()

    epoch()
    sync(dev)
    t0 = time.perf_counter()
    for _ in range(epochs):
        epoch()
    sync(dev)
    return epochs * len(data.y_train) / (time.perf_counter() - t0)


def main() -> None:
    """Parse arguments, run both pipelines, print images/s and their ratio."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--width", type=int, default=64, help="ResNet-18 base width (64 = standard)")
    p.add_argument("--images", type=int, default=10_000, help="training images per epoch")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--epochs", type=int, default=2, help="timed epochs (after one warm-up)")
    p.add_argument("--shape", type=int, nargs=3, default=(3, 32, 32), metavar=("C", "H", "W"))
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--compile", action="store_true", help="torch.compile the trainer's model")
    p.add_argument("--full-run", type=int, default=0, metavar="EPOCHS",
                   help="afterwards, time one whole training run of this many epochs")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    data = generated(args.images, tuple(args.shape), args.classes)
    optim = replace(defaults().optim, batch_size=args.batch_size)
    c, h, w = args.shape
    print(f"device {args.device}"
          + (f" ({torch.cuda.get_device_name(args.device)})" if args.device.startswith("cuda")
             else f" ({torch.get_num_threads()} threads)")
          + f"; ResNet-18 width {args.width}; {2 * c}x{h}x{w} inputs; {args.images} images, "
          f"batch {args.batch_size}; {args.epochs} timed epochs after 1 warm-up")
    fast = trainer_img_s(data, optim, args.width, args.device, args.epochs, args.compile)
    print(f"labaug trainer : {fast:10.1f} train img/s")
    naive = naive_img_s(data, optim, args.width, args.device, args.epochs)
    print(f"naive pipeline : {naive:10.1f} train img/s")
    print(f"ratio          : {fast / naive:10.2f}x")
    if args.device.startswith("cuda"):
        hours = 100 * 50_000 / fast / 3600
        print(f"projected 100-epoch, 50,000-image run: {hours * 60:.1f} min of training "
              "(excluding per-epoch test evaluation)")
    if args.full_run:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            h = train_resnet(data, ResNetRun("benchmark", "weight_decay", 0),
                             replace(optim, epochs=args.full_run),
                             replace(defaults().resnet, width=args.width), device=args.device,
                             checkpoint=Path(tmp) / "run.pt", compile_model=args.compile)
            wall = time.perf_counter() - t0
        print(f"full run: {args.full_run} epochs x {args.images} images in {wall / 60:.1f} min "
              f"(final train loss {h.train_loss[-1]:.4f}, test error {h.test_error[-1]:.4f})")


if __name__ == "__main__":
    main()
