"""Benchmark: the batched linear sweep against the naive loop and against its floor.

For every method and two shapes (the synthetic task, 50,000 x 10, and a CIFAR-10-like binary
task, 10,000 x 3,072 as 3 x 32 x 32 images), side by side in this one process:

* naive: the 20 models trained one at a time the way research code usually is (nn.Linear, a
  DataLoader over a TensorDataset, torch.optim.Adam(weight_decay=...), the augmentation written
  out on each batch's inputs);
* batched: `labaug.train.linear.train_sweep`, the whole grid as one model;
* floor: the step's bare matrix products for the same shapes, (B, F) x (F, M) and (F, B) x (B, M),
  as many as the sweep runs: what a step cannot go below.

Then a profile of the batched step: where a step's time goes (matrix products, loss, backward
pass, optimizer, augmentation, draws, indexing), per step and as a share.

    python benchmarks/linear_sweep.py                  # both shapes, every method, 2 epochs
    python benchmarks/linear_sweep.py --shapes synthetic --methods mixup --epochs 5
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile
from torch.utils.data import DataLoader, TensorDataset

from labaug import augment
from labaug.augment.cutmix import box_mask, draw_boxes
from labaug.augment.draws import EpochDraws
from labaug.config import OptimConfig, defaults
from labaug.data import LinearData
from labaug.data.synthetic import make_synthetic
from labaug.train.linear import train_sweep

CONFIG = defaults()


@dataclass(frozen=True)
class Shape:
    """A benchmark task: its data and the experiment whose methods run on it."""

    name: str
    experiment: augment.Experiment
    make: Callable[[int], LinearData]


def cifar_like(n: int, seed: int = 0) -> LinearData:
    """A CIFAR-10-like binary task: n images 3 x 32 x 32, standardized Gaussian pixels whose mean
    depends on the label (so that training does something), and 2,000 test images."""
    rng = np.random.default_rng(seed)
    shape = (3, 32, 32)
    n_features = math.prod(shape)
    pattern = rng.normal(size=n_features) * 0.1

    def make(m: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.where(rng.random(m) < 0.5, -1.0, 1.0).astype(np.float32)
        x = rng.normal(size=(m, n_features)) + y[:, None] * pattern
        return x.astype(np.float32), y

    x_train, y_train = make(n)
    x_test, y_test = make(2000)
    return LinearData(x_train, y_train, x_test, y_test, image_shape=shape)


SHAPES = {
    "synthetic": Shape("synthetic 50,000 x 10", "synthetic",
                       lambda n: make_synthetic(replace(CONFIG.synthetic, n_train=n), 0, "zero",
                                                CONFIG.low_noise)),
    "cifar-like": Shape("CIFAR-like 10,000 x 3,072", "binary_images", cifar_like),
}
DEFAULT_N = {"synthetic": 50_000, "cifar-like": 10_000}


# --- the naive loop -----------------------------------------------------------------------------


def naive_batch(method: str, value: float, xb: torch.Tensor, tb: torch.Tensor,
                rng: np.random.Generator,
                image: tuple[int, int, int] | None) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch's augmentation written out on the inputs, per example, as usually done."""
    if method == "label_smoothing":
        return xb, (1 - value) * tb + value / 2
    if method in ("mixup", "cutmix") and value > 0:
        b = len(xb)
        lam = rng.beta(value, value, size=b)
        perm = torch.randperm(b)
        if method == "mixup":
            lt = torch.as_tensor(lam, dtype=torch.float32)
            return lt[:, None] * xb + (1 - lt[:, None]) * xb[perm], lt * tb + (1 - lt) * tb[perm]
        assert image is not None
        c, h, w = image
        boxes, weight = draw_boxes(rng, lam, h, w)
        mask = box_mask(torch.as_tensor(boxes), h, w, xb.dtype)[:, None]     # (B, 1, H, W)
        images = xb.view(b, c, h, w)
        mixed = images * (1 - mask) + images[perm] * mask
        lt = torch.as_tensor(weight, dtype=torch.float32)
        return mixed.reshape(b, -1), lt * tb + (1 - lt) * tb[perm]
    return xb, tb


def naive_sweep(data: LinearData, method: str, grid: np.ndarray, optim: OptimConfig,
                seed: int) -> list[torch.Tensor]:
    """One model per value: nn.Linear + DataLoader + torch.optim.Adam, as usually written."""
    x = torch.as_tensor(data.x_train)
    t = (torch.as_tensor(data.y_train) + 1) / 2
    rng = np.random.default_rng(seed)
    weights = []
    for value in grid:
        torch.manual_seed(seed)
        model = torch.nn.Linear(x.shape[1], 1, bias=False)
        decay = augment.get(method).decay(float(value))
        opt = torch.optim.Adam(model.parameters(), lr=optim.lr, betas=optim.betas,
                               weight_decay=decay)
        loader = DataLoader(TensorDataset(x, t), batch_size=optim.batch_size, shuffle=True)
        for _ in range(optim.epochs):
            for xb, tb in loader:
                xb, tb = naive_batch(method, float(value), xb, tb, rng, data.image_shape)
                loss = F.binary_cross_entropy_with_logits(model(xb).squeeze(1), tb)
                opt.zero_grad()
                loss.backward()
                opt.step()
        weights.append(model.weight.detach().clone())
    return weights


# --- timing -------------------------------------------------------------------------------------

REPEATS = 3
"""The batched sweep and the floor take a fraction of a second: each is timed this many times and
the median is reported, so that a moment of noise on the machine does not decide the ratio. The
naive loop runs for seconds and is timed once."""


def median_seconds(fn: Callable[[], object]) -> float:
    """Median wall time of ``REPEATS`` calls of ``fn``."""
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# --- the floor ----------------------------------------------------------------------------------


def floor(data: LinearData, n_models: int, optim: OptimConfig) -> None:
    """The sweep's bare matrix products alone: per step (B, F) x (F, M) for the logits and
    (F, B) x (B, M) for the gradient, on the same shapes, as many steps as it runs."""
    x = torch.as_tensor(data.x_train)
    w = torch.zeros(n_models, x.shape[1])
    n, bs = len(x), optim.batch_size
    for _ in range(optim.epochs):
        for lo in range(0, n, bs):
            xb = x[lo:lo + bs]
            z = torch.mm(xb, w.T)
            torch.mm(xb.T, z)


# --- the profile --------------------------------------------------------------------------------

CATEGORIES = ("matrix products", "loss", "backward pass", "optimizer", "augmentation", "draws",
              "indexing", "other")
MATMULS = {"aten::mm", "aten::bmm", "aten::addmm", "aten::einsum"}
INDEXING = {"aten::index_select", "aten::randperm", "aten::slice", "aten::select",
            "aten::as_strided", "aten::view", "aten::reshape"}


def labaug_frames(event: object) -> list[str]:
    """The labaug functions enclosing a profiled operator, innermost first ("file: name")."""
    frames = []
    parent = getattr(event, "cpu_parent", None)
    while parent is not None:
        if "labaug/" in parent.name:
            path, _, func = parent.name.partition(": ")
            frames.append(f"{path.split('(')[0].rsplit('labaug/', 1)[1]}: {func}")
        parent = parent.cpu_parent
    return frames


def category(frames: list[str], name: str) -> str:
    """Which part of the step an operator belongs to, from the labaug functions around it."""
    where = " ".join(frames)
    if "draws.py: epoch" in where or "epoch_partners" in where:
        return "draws"
    if "linear.py: step" in where:                   # SweepAdam.step
        return "optimizer"
    if "logit_grad" in where:
        return "backward pass"
    if "augment/" in where:
        return "augmentation"
    if name in MATMULS:
        return "matrix products"
    if "binary_cross_entropy" in name or "log_sigmoid" in name or "losses.py" in where:
        return "loss"
    if "logit_step" in where or "mixed_input_step" in where:
        return "backward pass"
    if name in INDEXING:
        return "indexing"
    if name in ("aten::mul", "aten::add"):            # the coupled weight-decay term
        return "optimizer"
    return "other"


def step_profile(data: LinearData, method: str, grid: np.ndarray,
                 optim: OptimConfig) -> tuple[dict[str, float], float]:
    """Microseconds per step by category over one epoch of the sweep under the profiler, and the
    epoch's wall time per step. Draws are mostly numpy, which the profiler does not see: they
    are timed by wall clock around `EpochDraws.epoch` (which includes the partner sort)."""
    one = replace(optim, epochs=1)
    draw_seconds = 0.0
    original = EpochDraws.epoch

    def timed(fn: Callable[..., object]) -> Callable[..., object]:
        def wrapper(*args: object, **kwargs: object) -> object:
            nonlocal draw_seconds
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            draw_seconds += time.perf_counter() - start
            return out
        return wrapper

    EpochDraws.epoch = timed(original)  # type: ignore[method-assign,assignment]
    try:
        with profile(activities=[ProfilerActivity.CPU], with_stack=True) as prof:
            start = time.perf_counter()
            train_sweep(data, method, grid, 0, one)
            wall = time.perf_counter() - start
    finally:
        EpochDraws.epoch = original  # type: ignore[method-assign]
    steps = math.ceil(len(data.y_train) / optim.batch_size)
    totals: dict[str, float] = defaultdict(float)
    for event in prof.events():
        if not event.name.startswith("aten::"):
            continue
        if event.cpu_parent is not None and event.cpu_parent.name.startswith("aten::"):
            continue                               # counted in its calling operator
        frames = labaug_frames(event)
        part = category(frames, event.name)
        if frames and part != "draws":
            totals[part] += event.cpu_time_total
    totals["draws"] = draw_seconds * 1e6
    return {k: v / steps for k, v in totals.items()}, wall * 1e6 / steps


# --- main ---------------------------------------------------------------------------------------


def main() -> None:
    """Run naive, batched and floor per shape and method, then the step profiles."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--methods", nargs="+", default=None,
                        help="default: every configured method that runs on the shape")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-profile", action="store_true", help="skip the step profiles")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    optim = replace(CONFIG.optim, epochs=args.epochs)
    print(f"{args.epochs} epochs, batch {optim.batch_size}, {args.threads} thread(s), "
          f"torch {torch.__version__}; times in seconds (batched and floor: median of "
          f"{REPEATS} runs; naive: one run), ratios side by side in this run")
    profiles = []
    for key in args.shapes:
        shape = SHAPES[key]
        data = shape.make(DEFAULT_N[key])
        methods = [m for m in augment.for_experiment(CONFIG.methods, shape.experiment)
                   if args.methods is None or m in args.methods]
        # Warm up every path at full size (allocator, kernels, DataLoader workers' first
        # batches) so that none pays first-call costs in the timed runs.
        one = replace(optim, epochs=1)
        for method in methods:
            train_sweep(data, method, CONFIG.grid(method), 0, one)
            naive_sweep(data, method, CONFIG.grid(method)[-1:], one, 0)
            floor(data, len(CONFIG.grid(method)), one)
        print(f"\n{shape.name} ({len(data.y_train)} training points)")
        print(f"{'method':<17}{'naive':>9}{'batched':>9}{'floor':>9}{'naive/batched':>15}"
              f"{'batched/floor':>15}")
        for method in methods:
            grid = CONFIG.grid(method)
            t_fast = median_seconds(lambda: train_sweep(data, method, grid, 0, optim))  # noqa: B023
            start = time.perf_counter()
            naive_sweep(data, method, grid, optim, 0)
            t_slow = time.perf_counter() - start
            t_floor = median_seconds(lambda: floor(data, len(grid), optim))  # noqa: B023
            print(f"{method:<17}{t_slow:>9.3f}{t_fast:>9.3f}{t_floor:>9.3f}"
                  f"{t_slow / t_fast:>14.0f}x{t_fast / t_floor:>14.1f}x", flush=True)
            if not args.no_profile:
                profiles.append((shape.name, method, *step_profile(data, method, grid, optim)))
    if profiles:
        print("\nwhere a batched step's time goes (microseconds per step, one epoch under the "
              "profiler; draws by wall clock)")
        print(f"{'shape':<27}{'method':<17}" + "".join(f"{c[:11]:>12}" for c in CATEGORIES)
              + f"{'wall':>9}")
        for name, method, parts, wall in profiles:
            print(f"{name:<27}{method:<17}"
                  + "".join(f"{parts.get(c, 0.0):>12.1f}" for c in CATEGORIES)
                  + f"{wall:>9.1f}")


if __name__ == "__main__":
    main()
