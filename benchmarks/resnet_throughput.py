"""Benchmark: training images/s of the ResNet trainer against a naive pipeline, same device.

Both train the CIFAR-shaped ResNet-18 with class channels (6 x 32 x 32 inputs; width 64 and
batch 500 by default, the paper's model and batch) on the same generated data, in this one
process, side by side:

* the labaug trainer (`labaug.train.resnet.ResNetTrainer`): the dataset resident on the device as
  one tensor (channels_last on CUDA), batches by index, class channels concatenated there,
  autocast at ``--precision`` (auto = bf16 where the GPU computes in it natively), fused Adam,
  cuDNN autotuning, one host sync per epoch (``--compile`` also times it with torch.compile,
  beside the eager trainer, and prints the speedup, what compiling adds to the warm-up epoch,
  and after how many training images the faster steps pay that back);
* the naive pipeline, written the way research code usually is: a per-item Dataset whose
  ``__getitem__`` concatenates the image and its class vector (numpy -> torch), a torch
  DataLoader, and an fp32 training loop, with PyTorch's default cuDNN settings.

It prints both rates and their ratio, the model's training FLOPs per image (one forward and
backward counted by torch.utils.flop_counter.FlopCounterMode), and on a GPU the fraction of the
GPU's dense bf16 peak that the trainer reaches (peaks in `PEAK_BF16_TFLOPS`; n/a for a GPU not in
the table). ``--runs-per-gpu 1 2 4`` also measures the total rate of that many trainer processes
training at once on the one device (what ``resnet.runs_per_gpu`` does in the workflow).

    python benchmarks/resnet_throughput.py                               # CUDA if present
    python benchmarks/resnet_throughput.py --runs-per-gpu 1 2 4
    python benchmarks/resnet_throughput.py --device cpu --width 4 --images 500 --batch-size 100 \\
        --epochs 1

On CUDA it also projects the wall time of one 100-epoch, 50,000-image run; ``--full-run`` then
trains one whole run with the real trainer loop (per-epoch test error and checkpoints included):

    python benchmarks/resnet_throughput.py --images 50000 --full-run 100

``--json PATH`` also writes the numbers it printed to PATH (benchmarks/gpu_checks.py reads them).
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing as mp
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from queue import Empty
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode

from labaug.config import OptimConfig, defaults
from labaug.data.channels import ClassChannelData, class_channel_data
from labaug.data.raw import RawImages
from labaug.models.nets import CifarResNet18, resnet18
from labaug.rng import numpy_rng, torch_rng
from labaug.train.resnet import ResNetRun, ResNetTrainer, train_resnet

# Dense (no sparsity) bf16 tensor-core peaks in TFLOP/s from the vendor's data sheets, matched
# against torch.cuda.get_device_name (first match wins, so the more specific names come first).
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),       # SXM (name "NVIDIA H100 80GB HBM3")
    ("H200", 989.0),
    ("GH200", 989.0),
    ("A100", 312.0),
)


def peak_bf16_tflops(name: str) -> float | None:
    """The dense bf16 peak of the GPU called ``name``, or None when it is not in the table."""
    for key, peak in PEAK_BF16_TFLOPS:
        if key in name:
            return peak
    return None


def generated(n: int, shape: tuple[int, int, int], classes: int) -> ClassChannelData:
    """CIFAR-shaped random uint8 images and labels, standardized, with class vectors."""
    rng = numpy_rng(0, "benchmark", "resnet")
    x = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
    y = rng.integers(0, classes, size=n).astype(np.int64)
    raw = RawImages(x, y, x[:1000], y[:1000], tuple(str(k) for k in range(classes)))
    return class_channel_data(raw, "benchmark", 0)


def train_flops_per_image(in_channels: int, classes: int, width: int,
                          shape: tuple[int, int]) -> float:
    """FLOPs of one training step per image: forward and backward of the model, counted on the
    meta device (shapes only) for a batch of 2 (BatchNorm needs more than one)."""
    with torch.device("meta"):
        model = CifarResNet18(in_channels, classes, width)
        x = torch.zeros(2, in_channels, *shape)
    counter = FlopCounterMode(display=False)
    with counter:
        model(x).sum().backward()
    return float(counter.get_total_flops()) / 2


def compile_cost(eager_warmup_s: float, compiled_warmup_s: float, eager_img_s: float,
                 compiled_img_s: float) -> str:
    """One line: what compiling costs (the warm-up epochs' difference) and how many training
    images a run must have before the faster steps pay it back (50,000 images an epoch)."""
    cost = compiled_warmup_s - eager_warmup_s
    head = (f"compilation: warm-up epoch {compiled_warmup_s:.1f} s compiled, "
            f"{eager_warmup_s:.1f} s eager ({cost:+.1f} s)")
    saved_per_image = 1 / eager_img_s - 1 / compiled_img_s
    if saved_per_image <= 0:
        return head + "; never paid back (the compiled steps are no faster)"
    images = max(cost, 0.0) / saved_per_image
    return head + (f"; paid back after {images:,.0f} training images "
                   f"({images / 50_000:.1f} epochs of 50,000)")


def sync(device: torch.device) -> None:
    """Wait for queued device work, so wall time measures it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_trainer(data: ClassChannelData, optim: OptimConfig, width: int, device: str,
                 compile_model: bool, precision: str) -> ResNetTrainer:
    """labaug's trainer for the weight-decay run of seed 0."""
    return ResNetTrainer(data, ResNetRun("benchmark", "weight_decay", 0), optim,
                         replace(defaults().resnet, width=width), device=device,
                         compile_model=compile_model, precision=precision)


class TrainerTiming(NamedTuple):
    """The trainer's training rate after its warm-up epoch, its precision, and the wall time of
    that warm-up epoch (which holds torch.compile's compilation and cuDNN's autotuning)."""

    img_s: float
    precision: str
    warmup_s: float


def trainer_img_s(data: ClassChannelData, optim: OptimConfig, width: int, device: str,
                  epochs: int, compile_model: bool, precision: str = "auto") -> TrainerTiming:
    """Training images/s of labaug's ResNetTrainer (after one timed warm-up epoch)."""
    dev = torch.device(device)
    t0 = time.perf_counter()
    tr = make_trainer(data, optim, width, device, compile_model, precision)
    tr.train_epoch()
    sync(dev)
    t1 = time.perf_counter()
    for _ in range(epochs):
        tr.train_epoch()
    sync(dev)
    return TrainerTiming(epochs * len(data.y_train) / (time.perf_counter() - t1), tr.precision,
                         t1 - t0)


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
    """Training images/s of the naive pipeline: DataLoader, per-item concat, fp32, and PyTorch's
    default cuDNN settings (no autotuning, which the trainer measured before it switched on)."""
    saved = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = False
    try:
        return _naive_img_s(data, optim, width, device, epochs)
    finally:
        torch.backends.cudnn.benchmark = saved


def _naive_img_s(data: ClassChannelData, optim: OptimConfig, width: int, device: str,
                 epochs: int) -> float:
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


def _concurrent_worker(args: dict[str, Any], barrier: Any, queue: Any) -> None:
    """One of several trainer processes sharing the device: warm up, wait for all, time."""
    if args["threads"]:
        torch.set_num_threads(args["threads"])
    data = generated(args["images"], tuple(args["shape"]), args["classes"])
    optim = replace(defaults().optim, batch_size=args["batch_size"])
    tr = make_trainer(data, optim, args["width"], args["device"], False,
                      args["precision"])
    dev = torch.device(args["device"])
    tr.train_epoch()
    sync(dev)
    barrier.wait()
    t0 = time.perf_counter()
    for _ in range(args["epochs"]):
        tr.train_epoch()
    sync(dev)
    queue.put((t0, time.perf_counter(), args["epochs"] * len(data.y_train)))


def concurrent_img_s(args: dict[str, Any], runs: int) -> float:
    """Total training images/s of ``runs`` trainer processes training at once on one device."""
    ctx = mp.get_context("spawn")      # CUDA cannot be forked
    barrier, queue = ctx.Barrier(runs), ctx.Queue()
    procs = [ctx.Process(target=_concurrent_worker, args=(args, barrier, queue))
             for _ in range(runs)]
    for p in procs:
        p.start()
    spans: list[tuple[float, float, int]] = []
    try:
        while len(spans) < runs:
            try:
                spans.append(queue.get(timeout=1.0))
            except Empty:
                # One that died (out of memory, a CUDA error) would leave the others waiting
                # at the barrier, and this loop, for ever.
                failed = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
                if failed:
                    raise RuntimeError(f"a benchmark process failed (exit code {failed[0]})"
                                       ) from None
    finally:
        for p in procs:
            if len(spans) < runs:
                p.terminate()
            p.join()
    start, end = min(s[0] for s in spans), max(s[1] for s in spans)
    return float(sum(s[2] for s in spans) / (end - start))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (``argv`` None: sys.argv)."""
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--width", type=int, default=64, help="ResNet-18 base width (64 = standard)")
    p.add_argument("--images", type=int, default=10_000, help="training images per epoch")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--epochs", type=int, default=2, help="timed epochs (after one warm-up)")
    p.add_argument("--shape", type=int, nargs=3, default=(3, 32, 32), metavar=("C", "H", "W"))
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp16", "fp32"),
                   help="the trainer's autocast precision (auto: bf16/fp16 on CUDA, fp32 on CPU)")
    p.add_argument("--compile", action="store_true",
                   help="also time the trainer with torch.compile (compilation excluded)")
    p.add_argument("--runs-per-gpu", type=int, nargs="*", default=[], metavar="N",
                   help="also measure the total rate of N concurrent trainer processes")
    p.add_argument("--full-run", type=int, default=0, metavar="EPOCHS",
                   help="afterwards, time one whole training run of this many epochs")
    p.add_argument("--json", type=Path, default=None, metavar="PATH",
                   help="also write the numbers as JSON to PATH")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print its table, and return the numbers (img/s, ratio, FLOPs, ...)."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    c, h, w = args.shape
    data = generated(args.images, (c, h, w), args.classes)
    optim = replace(defaults().optim, batch_size=args.batch_size)
    cuda = args.device.startswith("cuda")
    name = torch.cuda.get_device_name(args.device) if cuda else f"{torch.get_num_threads()} threads"
    print(f"device {args.device} ({name}); ResNet-18 width {args.width}; {2 * c}x{h}x{w} inputs; "
          f"{args.images} images, batch {args.batch_size}; {args.epochs} timed epochs after "
          f"1 warm-up")
    eager = trainer_img_s(data, optim, args.width, args.device, args.epochs, False,
                          args.precision)
    fast, precision = eager.img_s, eager.precision
    naive = naive_img_s(data, optim, args.width, args.device, args.epochs)
    flops = train_flops_per_image(2 * c, args.classes, args.width, (h, w))
    out: dict[str, Any] = {"device": args.device, "device_name": name,
                           "torch_version": torch.__version__, "precision": precision,
                           "width": args.width, "shape": [c, h, w], "images": args.images,
                           "batch_size": args.batch_size, "epochs": args.epochs,
                           "trainer_img_s": fast, "naive_img_s": naive, "ratio": fast / naive,
                           "train_flops_per_image": flops, "eager_warmup_s": eager.warmup_s,
                           "runs_per_gpu_img_s": {},
                           "errors": {}}

    def save() -> None:
        """Write the numbers so far (a benchmark stopped later still leaves them)."""
        if args.json is not None:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(out, indent=2) + "\n")

    def optional(stage: str, measure: Callable[[], None]) -> None:
        """Run one optional measurement; a failure is printed and recorded, not fatal, so the
        numbers measured before and after it are kept."""
        try:
            measure()
        except Exception as err:  # noqa: BLE001 - any failure of one stage is reported
            traceback.print_exc()
            out["errors"][stage] = f"{type(err).__name__}: {err}"
            print(f"{stage}: FAILED ({out['errors'][stage]})", flush=True)
        save()

    print(f"labaug trainer ({precision}): {fast:10.1f} train img/s")
    print(f"naive pipeline (fp32, DataLoader): {naive:10.1f} train img/s")
    print(f"ratio: {fast / naive:.2f}x")
    achieved = flops * fast / 1e12
    print(f"model: {flops / 1e9:.3f} GFLOP per training image (forward + backward); trainer "
          f"reaches {achieved:.3f} TFLOP/s")
    peak = peak_bf16_tflops(name) if cuda else None
    out["fraction_of_bf16_peak"] = None if peak is None else achieved / peak
    print("fraction of the GPU's dense bf16 peak: "
          + ("n/a (" + ("not a GPU" if not cuda else f"{name} not in the peak table") + ")"
             if peak is None else f"{achieved / peak:.1%} of {peak:.0f} TFLOP/s"))
    if cuda:
        minutes = 100 * 50_000 / fast / 60
        print(f"projected 100-epoch, 50,000-image run: {minutes:.1f} min of training "
              "(excluding per-epoch test evaluation)")
    save()

    def compiled() -> None:
        timing = trainer_img_s(data, optim, args.width, args.device, args.epochs, True,
                               args.precision)
        rate = timing.img_s
        out["compiled_img_s"], out["compiled_warmup_s"] = rate, timing.warmup_s
        print(f"labaug trainer ({precision}, torch.compile): {rate:10.1f} train img/s "
              f"({rate / fast:.2f}x eager; compilation excluded)", flush=True)
        out["compile_cost"] = compile_cost(eager.warmup_s, timing.warmup_s, fast, rate)
        print(out["compile_cost"], flush=True)

    if args.compile:
        optional("torch.compile", compiled)

    def concurrent(runs: int) -> None:
        rate = concurrent_img_s(dict(vars(args), precision=args.precision), runs)
        out["runs_per_gpu_img_s"][runs] = rate
        print(f"{runs} concurrent run(s) on {args.device}: {rate:10.1f} train img/s "
              f"in total ({rate / fast:.2f}x one run)", flush=True)

    for runs in args.runs_per_gpu:
        optional(f"{runs} concurrent runs", functools.partial(concurrent, runs))

    def full_run() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            hist = train_resnet(data, ResNetRun("benchmark", "weight_decay", 0),
                                replace(optim, epochs=args.full_run),
                                replace(defaults().resnet, width=args.width),
                                device=args.device, checkpoint=Path(tmp) / "run.pt",
                                precision=args.precision)
            wall = time.perf_counter() - t0
        print(f"full run: {args.full_run} epochs x {args.images} images in {wall / 60:.1f} min "
              f"(final train loss {hist.train_loss[-1]:.4f}, test error "
              f"{hist.test_error[-1]:.4f})", flush=True)
        out["full_run_seconds"] = wall

    if args.full_run:
        optional("full run", full_run)
    return out


if __name__ == "__main__":
    main()
