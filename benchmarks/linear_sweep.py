"""Benchmark: the batched 20-value sweep against training the same 20 models one at a time.

The baseline is written the way research code usually is: one nn.Linear per hyperparameter
value, a DataLoader over a TensorDataset, torch.optim.Adam(weight_decay=...), Mixup by mixing
the inputs of each batch. Both run on the same data and epochs, in this one process, and the
script prints wall time, the ratio, and the peak resident memory above the starting point.

    python benchmarks/linear_sweep.py              # N = 50,000, 20 values, 2 epochs each
    python benchmarks/linear_sweep.py --epochs 5 --methods mixup
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from labaug.augment import for_experiment
from labaug.config import OptimConfig, defaults
from labaug.data import LinearData
from labaug.data.synthetic import make_synthetic
from labaug.train.linear import train_sweep

CONFIG = defaults()
# The methods the naive baseline below implements, with their grids from config.yaml.
GRIDS = {m: CONFIG.grid(m) for m in for_experiment(CONFIG.methods, "synthetic")
         if m in ("weight_decay", "label_smoothing", "mixup")}


def rss_bytes() -> int:
    """Resident set size of this process."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(fn: Callable[[], Any]) -> tuple[float, int]:
    """Wall time of fn() and its peak RSS above the RSS at the start (sampled every 5 ms)."""
    start_rss = rss_bytes()
    peak = start_rss
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_bytes())
            time.sleep(0.005)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    t0 = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - t0
    done.set()
    thread.join()
    return elapsed, max(peak, rss_bytes()) - start_rss


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
        decay = float(value) if method == "weight_decay" else 0.0
        opt = torch.optim.Adam(model.parameters(), lr=optim.lr, betas=optim.betas,
                               weight_decay=decay)
        loader = DataLoader(TensorDataset(x, t), batch_size=optim.batch_size, shuffle=True)
        for _ in range(optim.epochs):
            for xb, tb in loader:
                if method == "label_smoothing":
                    tb = (1 - value) * tb + value / 2
                elif method == "mixup" and value > 0:
                    lam = torch.as_tensor(rng.beta(value, value, size=len(xb)),
                                          dtype=torch.float32)
                    perm = torch.randperm(len(xb))
                    xb = lam[:, None] * xb + (1 - lam[:, None]) * xb[perm]
                    tb = lam * tb + (1 - lam) * tb[perm]
                loss = F.binary_cross_entropy_with_logits(model(xb).squeeze(1), tb)
                opt.zero_grad()
                loss.backward()
                opt.step()
        weights.append(model.weight.detach().clone())
    return weights


def main() -> None:
    """Run both trainers per method and print the side-by-side numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--n-train", type=int, default=50_000)
    parser.add_argument("--methods", nargs="+", default=list(GRIDS), choices=list(GRIDS))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = make_synthetic(replace(CONFIG.synthetic, n_train=args.n_train), 0, "zero", 0.1)
    optim = replace(CONFIG.optim, epochs=args.epochs)
    sizes = sorted({len(g) for g in GRIDS.values()})
    print(f"N = {args.n_train}, {sizes} values per method, {args.epochs} epochs, batch "
          f"{optim.batch_size}, {args.threads} thread(s), torch {torch.__version__}")
    # Warm up both paths (allocator, kernels, DataLoader) so neither pays first-call costs.
    warm = make_synthetic(replace(CONFIG.synthetic, n_train=1000, n_test=10), 0, "zero", 0.1)
    one = replace(CONFIG.optim, epochs=1)
    for method in args.methods:
        train_sweep(warm, method, GRIDS[method], 0, one)
        naive_sweep(warm, method, GRIDS[method][:2], one, 0)
    print(f"{'method':<16}{'batched s':>10}{'naive s':>10}{'ratio':>8}"
          f"{'batched MiB':>13}{'naive MiB':>11}")
    for method in args.methods:
        grid = GRIDS[method]
        t_fast, m_fast = measure(lambda: train_sweep(data, method, grid, 0, optim))  # noqa: B023
        t_slow, m_slow = measure(lambda: naive_sweep(data, method, grid, optim, 0))  # noqa: B023
        print(f"{method:<16}{t_fast:>10.2f}{t_slow:>10.2f}{t_slow / t_fast:>8.1f}"
              f"{m_fast / 2**20:>13.1f}{m_slow / 2**20:>11.1f}", flush=True)


if __name__ == "__main__":
    main()
