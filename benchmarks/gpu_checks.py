"""The GPU checks in one command, also on a GPU machine without internet access.

A GPU node often has PyTorch but not Snakemake or netCDF4, and no way to download them. So:

1. On a machine with internet and this project's environment (``make setup``):

       .venv/bin/python benchmarks/gpu_checks.py bundle .gpu_bundle --python-version 3.12

   writes wheels, for the GPU machine's Python, of Snakemake, netCDF4, jsonschema and everything
   they require at the versions installed here (except what a PyTorch installation already has,
   `NOT_BUNDLED`), and a copy of the official files of each dataset it is given
   (``--datasets``; default fmnist, Fashion-MNIST, from config ``data_sources``). Copy the
   checkout, with ``.gpu_bundle`` in it, to the GPU machine.

2. On the GPU machine, in the checkout:

       python benchmarks/gpu_checks.py run OUT --bundle .gpu_bundle

   installs the bundled wheels that machine lacks or has at an older version (into
   ``runs/gpu_check/site``, first on the steps' import path), then writes,
   each into the folder OUT:

   - ``environment.json``: GPU, driver, Python, torch and CUDA versions, installed wheels;
   - ``benchmark.log`` and ``benchmark.json``: ``benchmarks/resnet_throughput.py
     --epochs 4 --runs-per-gpu 1 2 4 --compile``, run while nothing else uses the GPU;
   - the full-size runs: ``snakemake`` with ``--resources gpu=1 --configfile
     presets/gpu_check.yaml`` builds Figs. 4 and 5 (one 100-epoch ResNet-18 run per method on all
     of Fashion-MNIST, the four sharing the GPU) and Fig. 1 (its linear sweeps on the CPU cores
     meanwhile). It is started in a process session of its own, so it outlives this command;
   - ``pytest.log``: ``pytest -m gpu``, while the full runs train (it checks numbers, not speed);
   - ``snakemake.log`` and ``full_runs.tar.gz`` (results, figures, logs; no checkpoints), once
     the runs finish or ``--deadline`` seconds after the start, whichever comes first; runs
     still training keep going (``run`` then exits with status 3), and ``collect OUT`` later
     waits for them and writes both again.

3. Anywhere: ``python benchmarks/gpu_checks.py report OUT [OUT2]`` prints the GPU tables
   (docs/results/diagnosis.md shows them; OUT2: where ``collect`` wrote, when that was another
   folder).

A step can be left out (``--skip benchmark``); ``--preset`` and ``--targets`` run something
smaller through the same steps (the tests do so on the CPU).

This file is the command line; each verb lives in a module of its own: ``gpu_bundle.py``
(bundle, and installing it), ``gpu_run.py`` (run, collect) and ``gpu_report.py`` (report).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from gpu_bundle import bundle
from gpu_report import report
from gpu_run import PRESET, STEPS, collect, run


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (``argv`` None: sys.argv)."""
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("bundle", help="write the offline bundle (on a machine with internet)")
    b.add_argument("dest", type=Path)
    b.add_argument("--python-version", default="3.12", help="the GPU machine's Python (X.Y)")
    b.add_argument("--also", nargs="*", default=[], metavar="NAME",
                   help="more distributions to bundle, with what they require")
    b.add_argument("--datasets", nargs="*", default=["fmnist"],
                   help="datasets whose official files to bundle (from config data_sources)")
    r = sub.add_parser("run", help="run the checks (on the GPU machine)")
    r.add_argument("out", type=Path)
    r.add_argument("--bundle", type=Path, default=None, help="the bundle folder, if any")
    r.add_argument("--skip", nargs="*", default=[], choices=STEPS, help="steps to leave out")
    r.add_argument("--deadline", type=float, default=None, metavar="SECONDS",
                   help="collect the full runs this long after the start even if unfinished")
    r.add_argument("--step-timeout", type=float, default=300.0, metavar="SECONDS",
                   help="stop the benchmark, or the tests, after this long (a hang must not "
                        "hold up the full runs)")
    r.add_argument("--preset", nargs="+", default=[PRESET],
                   help="config files layered on config.yaml, in order")
    r.add_argument("--targets", nargs="*", default=["figures/fig4.pdf", "figures/fig5.pdf",
                                                    "figures/fig1.pdf"],
                   help="Snakemake targets, relative to the preset's output root")
    r.add_argument("--benchmark-args", default="--epochs 4 --runs-per-gpu 1 2 4 --compile",
                   help="arguments of benchmarks/resnet_throughput.py (one string)")
    c = sub.add_parser("collect", help="wait for full runs started by `run`, and collect them")
    c.add_argument("out", type=Path)
    c.add_argument("--wait", type=float, default=None, metavar="SECONDS")
    c.add_argument("--preset", nargs="+", default=[PRESET])
    t = sub.add_parser("report", help="print the GPU tables from run's folder(s)")
    t.add_argument("out", type=Path, nargs="+", help="run's folder, then collect's, if any")
    t.add_argument("--every", type=int, default=10, help="test error every N epochs")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch a subcommand; the process's exit status."""
    args = parse_args(argv)
    if args.command == "bundle":
        bundle(args.dest, args.python_version, args.also, args.datasets)
        return 0
    if args.command == "run":
        return run(args.out, args.bundle, args.skip, args.deadline, args.preset, args.targets,
                   args.benchmark_args.split(), args.step_timeout)
    if args.command == "collect":
        return collect(args.out, args.preset, args.wait)
    print(report(args.out, args.every), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
