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

3. Anywhere: ``python benchmarks/gpu_checks.py report OUT [OUT2]`` prints the README's GPU tables
   (OUT2: where ``collect`` wrote, when that was another folder).

A step can be left out (``--skip benchmark``); ``--preset`` and ``--targets`` run something
smaller through the same steps (the tests do so on the CPU).
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:    # labaug from this checkout, also where it is not installed
    sys.path.insert(0, str(REPO))

BUNDLE_ROOTS = ("snakemake", "netCDF4", "jsonschema")
"""The packages the workflow needs beyond a PyTorch installation; bundled with what they need."""

NOT_BUNDLED = frozenset({
    "numpy", "torch", "torchvision", "triton", "scipy", "pandas", "xarray", "matplotlib",
    "pillow",
    # Snakemake's ILP scheduler's solver (16 MB of wheel); without it Snakemake schedules
    # greedily, which changes nothing for this handful of jobs.
    "pulp",
})
"""Distributions never bundled: PyTorch's own stack (the GPU machine has it, built for it)."""

PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64")
"""Linux x86-64 wheel platforms pip may pick for the GPU machine, newest first."""

PRESET = "presets/gpu_check.yaml"
STEPS = ("benchmark", "full", "tests")
POLL_SECONDS = 5.0
STILL_RUNNING = 3
"""``run``'s exit status when every step so far passed but the full runs are still training."""


def normalized(name: str) -> str:
    """A distribution name in PEP 503 form (lower case, runs of -_. as one -)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    """The distribution name that a requirement string starts with."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if match is None:
        raise ValueError(f"cannot read a distribution name from requirement {requirement!r}")
    return match.group(1)


def requirement_closure(roots: Iterable[str], skip: Iterable[str] = NOT_BUNDLED
                        ) -> dict[str, str]:
    """{normalized name: installed version} of ``roots`` and everything they require (extras
    and requirements whose markers exclude this interpreter left out), except ``skip``.

    Read from the installed distributions' metadata, so the bundle holds the versions this
    environment runs and tests."""
    skipped = {normalized(s) for s in skip}
    found: dict[str, str] = {}
    todo = list(roots)
    while todo:
        name = normalized(todo.pop())
        if name in found or name in skipped:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue    # a requirement of another platform or Python (markers) is not here
        found[name] = dist.version
        for req in dist.requires or []:
            if "extra ==" in req or not _marker_holds(req):
                continue
            todo.append(requirement_name(req))
    return found


def _marker_holds(requirement: str) -> bool:
    """Whether a requirement's environment marker (after ';') holds for this interpreter."""
    if ";" not in requirement:
        return True
    from packaging.markers import Marker

    return bool(Marker(requirement.split(";", 1)[1]).evaluate())


def wheel_distribution(path: Path) -> tuple[str, str]:
    """The normalized distribution name and the version of a wheel file (from its name)."""
    name, version = path.name.split("-")[:2]
    return normalized(name), version


def download_wheels(packages: Mapping[str, str], dest: Path, python_version: str) -> list[Path]:
    """Wheels of ``packages`` ({name: version}) for CPython ``python_version`` on Linux x86-64,
    into ``dest``. A package published only as source is built here, and must be pure Python."""
    dest.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip"]
    target = ["--python-version", python_version, "--implementation", "cp"]
    for plat in PLATFORMS:
        target += ["--platform", plat]
    for name, version in sorted(packages.items()):
        spec = f"{name}=={version}"
        before = set(dest.iterdir())
        got = subprocess.run([*pip, "download", "--quiet", "--no-deps", "--only-binary=:all:",
                              *target, "--dest", str(dest), spec],
                             capture_output=True, text=True)
        if got.returncode != 0:
            built = subprocess.run([*pip, "wheel", "--quiet", "--no-deps", "--wheel-dir",
                                    str(dest), spec], capture_output=True, text=True)
            new = set(dest.iterdir()) - before
            if built.returncode != 0 or not all(p.name.endswith("-none-any.whl") for p in new):
                raise RuntimeError(f"no wheel of {spec} for Python {python_version} on Linux "
                                   f"x86-64:\n{got.stderr}{built.stderr}")
        print(f"  {spec}", flush=True)
    return sorted(dest.glob("*.whl"))


def bundle(dest: Path, python_version: str, also: Sequence[str], datasets: Sequence[str]
           ) -> None:
    """Write the offline bundle: wheels under dest/wheels, each dataset under dest/data/NAME."""
    packages = requirement_closure([*BUNDLE_ROOTS, *also])
    print(f"{len(packages)} distributions for Python {python_version} -> {dest / 'wheels'}")
    wheels = download_wheels(packages, dest / "wheels", python_version)
    for dataset in datasets:
        copy_dataset(dataset, dest / "data" / dataset)
    size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    print(f"bundle {dest}: {len(wheels)} wheels and {', '.join(datasets) or 'no data'}, "
          f"{size / 2**20:.1f} MiB")


def copy_dataset(dataset: str, dest: Path) -> None:
    """Copy ``dataset``'s official files from its config ``data_sources`` directory to ``dest``."""
    from labaug import datasets

    with open(REPO / "config.yaml") as fh:
        source = yaml.safe_load(fh)["data_sources"].get(dataset)
    if dataset not in datasets.builtin() or not source:
        raise FileNotFoundError(f"config.yaml names no local directory for {dataset!r} "
                                f"(data_sources.{dataset})")
    dest.mkdir(parents=True, exist_ok=True)
    for spec in datasets.builtin()[dataset].files:
        if not (Path(source) / spec.name).is_file():
            raise FileNotFoundError(f"{spec.name} not found in {source} (data_sources.{dataset})")
        shutil.copyfile(Path(source) / spec.name, dest / spec.name)


def needed_wheels(wheels: Iterable[Path]) -> list[Path]:
    """The wheels whose distribution this interpreter lacks, or has at an older version (an
    installed newer version is kept: nothing the machine has is downgraded)."""
    from packaging.version import Version

    out = []
    for wheel in wheels:
        name, version = wheel_distribution(wheel)
        try:
            if Version(metadata.version(name)) < Version(version):
                out.append(wheel)
        except metadata.PackageNotFoundError:
            out.append(wheel)
    return out


def install_bundle(bundle_dir: Path, site: Path) -> list[str]:
    """pip-install (offline, into ``site``) the bundled wheels this machine lacks or has older;
    their names."""
    wheels = needed_wheels(sorted((bundle_dir / "wheels").glob("*.whl")))
    if wheels:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index",
                        "--no-deps", "--no-compile", "--upgrade", "--target", str(site),
                        *map(str, wheels)], check=True)
    return [w.name for w in wheels]


def child_env(site: Path) -> dict[str, str]:
    """The environment of every step: ``site`` and the checkout first on the import path."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(site), str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def check_imports(env: Mapping[str, str]) -> None:
    """Fail, naming them, when a package the workflow needs cannot be imported."""
    modules = ("torch", "torchvision", "numpy", "scipy", "xarray", "netCDF4", "matplotlib",
               "yaml", "jsonschema", "snakemake", "labaug")
    code = ("import importlib, sys\nbad = []\n"
            f"for m in {modules!r}:\n"
            "    try:\n        importlib.import_module(m)\n"
            "    except Exception as e:\n        bad.append(f'{m} ({e})')\n"
            "print('; '.join(bad)); sys.exit(1 if bad else 0)")
    got = subprocess.run([sys.executable, "-c", code], env=dict(env), capture_output=True,
                         text=True)
    if got.returncode != 0:
        raise RuntimeError(f"cannot import: {got.stdout.strip() or got.stderr.strip()}. Add the "
                           "missing distributions to the bundle (bundle --also NAME).")


def environment(installed: Sequence[str]) -> dict[str, Any]:
    """What this machine is: GPU and driver, Python, torch, CUDA, and the wheels installed."""
    import torch

    from labaug.devices import native_bf16

    info: dict[str, Any] = {"python": platform.python_version(), "machine": platform.machine(),
                            "torch": torch.__version__, "cuda": torch.version.cuda,
                            "cuda_available": torch.cuda.is_available(),
                            "cpu_count": os.cpu_count(), "installed_wheels": list(installed)}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    multiprocessors=props.multi_processor_count,
                    bf16_native=native_bf16())
    smi = shutil.which("nvidia-smi")
    if smi:
        got = subprocess.run([smi, "--query-gpu=name,driver_version,memory.total",
                              "--format=csv,noheader"], capture_output=True, text=True)
        info["nvidia_smi"] = got.stdout.strip() or got.stderr.strip()
    return info


def logged(cmd: Sequence[str], log: Path, env: Mapping[str, str], timeout: float) -> int:
    """Run ``cmd`` in the checkout with its output in ``log``; its exit status. After
    ``timeout`` seconds it is stopped with every process it started, and the status is 124."""
    print(f"$ {' '.join(cmd)}  > {log.name}", flush=True)
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=REPO, env=dict(env), stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)    # its own process group: children too
            proc.wait()
            fh.write(f"\n[gpu_checks] stopped after {timeout:.0f} s\n")
            rc = 124
    print(f"  exit {rc} after {time.perf_counter() - t0:.0f} s", flush=True)
    return rc


def output_root(presets: Sequence[str]) -> str:
    """The output root of presets layered in order (the last one that sets it wins)."""
    root = "."
    for preset in presets:
        with open(REPO / preset) as fh:
            root = (yaml.safe_load(fh) or {}).get("output_root", root)
    return str(root)


class FullRuns:
    """The workflow run of the presets (layered in order), started in its own process session
    under their output root, so another command can wait for it and collect it."""

    def __init__(self, presets: Sequence[str]) -> None:
        self.presets = list(presets)
        self.root = REPO / output_root(self.presets)
        self.log = self.root / "snakemake.log"
        self.pid_file = self.root / "snakemake.pid"
        self.rc_file = self.root / "snakemake.rc"

    def start(self, targets: Sequence[str], bundle_dir: Path | None, env: Mapping[str, str]
              ) -> None:
        """Start Snakemake on ``targets`` (paths under the output root) in the background."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.rc_file.unlink(missing_ok=True)
        configs = list(self.presets)
        data = sorted(bundle_dir.glob("data/*")) if bundle_dir is not None else []
        if data:    # the bundled datasets replace their configured directories
            extra = self.root / "bundle.yaml"
            extra.write_text(yaml.safe_dump({"data_sources": {
                d.name: str(d.resolve()) for d in data}}))
            configs.append(str(extra))
        rel = os.path.relpath(self.root, REPO)
        cmd = [sys.executable, "-m", "snakemake", *(f"{rel}/{t}" for t in targets),
               "--resources", "gpu=1", "--configfile", *configs]
        script = (f"{shlex.join(cmd)} > {shlex.quote(str(self.log))} 2>&1; "
                  f"echo $? > {shlex.quote(str(self.rc_file))}")
        print(f"$ {' '.join(cmd)}  > {self.log.name} (in the background)", flush=True)
        proc = subprocess.Popen(["sh", "-c", script], cwd=REPO, env=dict(env),
                                start_new_session=True, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.pid_file.write_text(f"{proc.pid}\n")

    def returncode(self) -> int | None:
        """Snakemake's exit status, or None while it runs (or was never started here)."""
        if self.rc_file.is_file():
            text = self.rc_file.read_text().strip()
            return int(text) if text else None
        return None

    def running(self) -> bool:
        """Whether the background Snakemake is still running."""
        if self.returncode() is not None or not self.pid_file.is_file():
            return False
        try:
            os.kill(int(self.pid_file.read_text()), 0)
        except (ProcessLookupError, ValueError):
            return False
        return True

    def wait(self, until: float) -> int | None:
        """Wait until it ends or the monotonic time ``until``; its exit status, or None."""
        while self.running() and time.monotonic() < until:
            time.sleep(POLL_SECONDS)
        return self.returncode()

    def collect(self, out: Path) -> None:
        """Copy its log, and its results, figures and logs as full_runs.tar.gz, into ``out``."""
        if self.log.is_file():
            shutil.copyfile(self.log, out / "snakemake.log")
        with tarfile.open(out / "full_runs.tar.gz", "w:gz") as tar:
            for part in ("results", "figures", "logs"):
                if (self.root / part).is_dir():
                    tar.add(self.root / part, arcname=part)
        state = self.returncode()
        print(f"collected {self.root.name}: " + ("still running" if state is None and
              self.running() else f"exit {state}"), flush=True)


def run(out: Path, bundle_dir: Path | None, skip: Sequence[str], deadline: float | None,
        presets: Sequence[str], targets: Sequence[str], benchmark_args: Sequence[str],
        step_timeout: float = 300.0) -> int:
    """The checks, in order (see the module docstring); 0 when every step that ran passed."""
    start = time.monotonic()
    until = float("inf") if deadline is None else start + deadline
    out.mkdir(parents=True, exist_ok=True)
    runs = FullRuns(presets)
    if runs.running():    # they would share the GPU with the benchmark, and hold Snakemake's lock
        raise RuntimeError(f"the full runs of an earlier `run` are still training (pid "
                           f"{runs.pid_file.read_text().strip()}); `collect` waits for them")
    site = runs.root / "site"
    installed = install_bundle(bundle_dir, site) if bundle_dir is not None else []
    env = child_env(site)
    check_imports(env)
    info = environment(installed)
    (out / "environment.json").write_text(json.dumps(info, indent=2) + "\n")
    print(f"machine: {info.get('gpu', 'no CUDA GPU')}; Python {info['python']}, torch "
          f"{info['torch']}, CUDA {info['cuda']}; installed {len(installed)} wheels", flush=True)
    status = 0
    if "benchmark" not in skip:
        cmd = [sys.executable, "benchmarks/resnet_throughput.py", "--json",
               str(out.resolve() / "benchmark.json"), *benchmark_args]
        status |= logged(cmd, out / "benchmark.log", env, _left(until, step_timeout)) != 0
    if "full" not in skip:
        runs.start(targets, bundle_dir, env)
    if "tests" not in skip:
        # The gpu-marked tests live in several modules; one that cannot be imported on the
        # GPU machine must not stop the others.
        cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-ra", "-p", "no:cacheprovider",
               "--continue-on-collection-errors", "tests"]
        status |= logged(cmd, out / "pytest.log", env, _left(until, step_timeout)) != 0
    if "full" not in skip:
        rc = runs.wait(until)
        runs.collect(out)
        if rc is None and runs.running():
            print(f"the full runs are still training after {time.monotonic() - start:.0f} s; "
                  "`collect OUT` waits for them", flush=True)
            return STILL_RUNNING if status == 0 else 1
        status |= rc != 0
    print(f"all steps done in {time.monotonic() - start:.0f} s", flush=True)
    return int(status)


def _left(until: float, most: float) -> float:
    """Seconds left before the monotonic time ``until``, at most ``most``, at least 1."""
    return max(1.0, min(most, until - time.monotonic()))


def collect(out: Path, presets: Sequence[str], wait: float | None) -> int:
    """Wait (at most ``wait`` seconds) for full runs started earlier, then collect them."""
    runs = FullRuns(presets)
    if not runs.pid_file.is_file():
        raise FileNotFoundError(f"no full runs were started here ({runs.pid_file} is missing)")
    out.mkdir(parents=True, exist_ok=True)
    rc = runs.wait(float("inf") if wait is None else time.monotonic() + wait)
    runs.collect(out)
    return 0 if rc == 0 else 1


EPOCH_LINE = re.compile(r"epoch (\d+)/(\d+): train loss ([\d.naif]+), train error ([\d.]+), "
                        r"test error ([\d.]+)[^(]*\(([\d.]+) s, ([\d.]+) train img/s"
                        r"(?:; test ([\d.]+) s, diagnosis ([\d.]+) s)?")


def epoch_lines(log: str) -> dict[int, dict[str, float]]:
    """{epoch: train_loss, train_error, test_error, seconds, img_s, and where the log has them
    test_seconds and diagnosis_seconds} from a class-channel job's log (the last attempt's line
    wins for an epoch trained twice)."""
    rows: dict[int, dict[str, float]] = {}
    for m in EPOCH_LINE.finditer(log):
        row = {"epochs": float(m.group(2)), "train_loss": float(m.group(3)),
               "train_error": float(m.group(4)), "test_error": float(m.group(5)),
               "seconds": float(m.group(6)), "img_s": float(m.group(7))}
        if m.group(8) is not None:
            row.update(test_seconds=float(m.group(8)), diagnosis_seconds=float(m.group(9)))
        rows[int(m.group(1))] = row
    return rows


def newest(folders: Sequence[Path], name: str) -> Path:
    """``name`` in the last of ``folders`` that has it (else in the last folder)."""
    have = [f / name for f in folders if (f / name).is_file()]
    return have[-1] if have else folders[-1] / name


def report(folders: Sequence[Path], every: int = 10) -> str:
    """The README's GPU tables (markdown) from the files that ``run`` (and ``collect``) wrote;
    a file in a later folder replaces the same file in an earlier one."""
    lines: list[str] = []
    env_file = newest(folders, "environment.json")
    if env_file.is_file():
        info = json.loads(env_file.read_text())
        lines.append(f"Machine: {info.get('gpu', 'no CUDA GPU')} "
                     f"({info.get('nvidia_smi', 'nvidia-smi not found')}), "
                     f"{info['cpu_count']} CPU cores; Python {info['python']}, torch "
                     f"{info['torch']}, CUDA {info['cuda']}.")
    pytest_log = newest(folders, "pytest.log")
    if pytest_log.is_file():
        summary = [ln for ln in pytest_log.read_text().splitlines() if ln.startswith("=")]
        lines.append(f"`pytest -m gpu`: {summary[-1].strip('= ') if summary else 'no summary'}.")
    bench_file = newest(folders, "benchmark.json")
    if bench_file.is_file():
        lines += ["", *benchmark_table(json.loads(bench_file.read_text()))]
    archive = newest(folders, "full_runs.tar.gz")
    if archive.is_file():
        with tempfile.TemporaryDirectory() as tmp:
            with tarfile.open(archive) as tar:
                tar.extractall(tmp, filter="data")
            lines += ["", *full_run_tables(Path(tmp), every)]
    return "\n".join(lines) + "\n"


def benchmark_table(b: Mapping[str, Any]) -> list[str]:
    """Markdown rows of benchmarks/resnet_throughput.py's numbers."""
    c, h, w = b["shape"]
    peak = b.get("fraction_of_bf16_peak")
    rows = [f"ResNet-18 width {b['width']}, {2 * c}x{h}x{w} inputs, batch {b['batch_size']}, "
            f"{b['images']} images, {b['epochs']} timed epoch(s) after one warm-up "
            "(`benchmarks/resnet_throughput.py`):", "",
            "| pipeline | train img/s | vs naive |", "|---|---:|---:|",
            f"| labaug trainer ({b['precision']}) | {b['trainer_img_s']:,.0f} | "
            f"{b['ratio']:.1f}x |",
            f"| naive (DataLoader, per-item concat, fp32) | {b['naive_img_s']:,.0f} | 1x |"]
    if "compiled_img_s" in b:
        rows.append(f"| labaug trainer ({b['precision']}, torch.compile) | "
                    f"{b['compiled_img_s']:,.0f} | {b['compiled_img_s'] / b['naive_img_s']:.1f}x |")
    for runs, rate in sorted(b.get("runs_per_gpu_img_s", {}).items(), key=lambda kv: int(kv[0])):
        rows.append(f"| {runs} labaug run{'s' if int(runs) > 1 else ''} at once, in total | "
                    f"{rate:,.0f} | {rate / b['naive_img_s']:.1f}x |")
    for stage, error in b.get("errors", {}).items():
        rows.append(f"| {stage} | failed: {error} | |")
    rows += ["", f"Training FLOPs per image {b['train_flops_per_image'] / 1e9:.3f} G; the "
             "trainer reaches " + (f"{peak:.1%} of the GPU's dense bf16 peak." if peak is not None
                                   else "an unknown fraction of peak (GPU not in the table).")]
    if "compile_cost" in b:
        rows += ["", f"torch.compile: {b['compile_cost']}."]
    return rows


MAX_EPOCH_COLUMNS = 8
"""The test-error-by-epoch table is printed for at most this many runs (one column each)."""


def full_run_tables(root: Path, every: int) -> list[str]:
    """Markdown: per run, epochs done, wall time, median img/s, the diagnosis's share of an
    epoch, lowest and final test error and final train error; then (for a few runs) the test
    error by epoch; then the class-channel table of `diagnosis_tables`."""
    # Each run's attempts log keeps every attempt's lines (the rule's own log only the last).
    logs = sorted((root / "logs" / "resnet").rglob("seed*.attempts.log"))
    if not logs:
        return ["No full-run logs were collected."]
    runs = {log: epoch_lines(log.read_text()) for log in logs}
    rows = ["| run | epochs done | wall | median train img/s | diagnosis / rest of epoch "
            "| lowest test error (epoch) | final test error | final train error |",
            "|---|---:|---:|---:|---:|---:|---:|---:|"]
    names = {}
    for log, ep in runs.items():
        relative = log.relative_to(root / "logs" / "resnet")
        run = relative.with_name(relative.name.split(".")[0])
        names[log] = " ".join(run.parts)
        wall = _benchmark_seconds(root / "logs" / "benchmarks" / "resnet" / f"{run}.tsv")
        total = int(max((r["epochs"] for r in ep.values()), default=0))
        rates = sorted(r["img_s"] for r in ep.values())
        shares = sorted(r["diagnosis_seconds"] / max(r["seconds"] - r["diagnosis_seconds"], 1e-9)
                        for r in ep.values() if "diagnosis_seconds" in r)
        cells = [names[log], f"{len(ep)}/{total}",
                 f"{wall / 60:.1f} min" if wall is not None else "unfinished"]
        if ep:
            best, final = min(ep, key=lambda e: (ep[e]["test_error"], e)), ep[max(ep)]
            cells += [f"{rates[len(rates) // 2]:,.0f}",
                      f"{shares[len(shares) // 2]:.1%}" if shares else "-",
                      f"{ep[best]['test_error']:.4f} ({best})",
                      f"{final['test_error']:.4f}", f"{final['train_error']:.4f}"]
        else:
            cells += ["-"] * 5
        rows.append("| " + " | ".join(cells) + " |")
    if len(runs) <= MAX_EPOCH_COLUMNS:
        last = max((max(ep) for ep in runs.values() if ep), default=0)
        shown = sorted({1, *range(every, last + 1, every), last} - {0})
        rows += ["", "Test error by epoch:", "",
                 "| epoch | " + " | ".join(names[log] for log in runs) + " |",
                 "|---:|" + "---:|" * len(runs)]
        for e in shown:
            rows.append(f"| {e} | " + " | ".join(
                f"{ep[e]['test_error']:.4f}" if e in ep else "-" for ep in runs.values()) + " |")
    return rows + diagnosis_tables(root)


def diagnosis_tables(root: Path) -> list[str]:
    """The class-channel table (`labaug.summary.resnet_table`) of each dataset under
    ``root``/results/resnet: from its aggregated file, or, where the runs did not all finish,
    from the per-run files that did (said so)."""
    from labaug.results import aggregate, read_netcdf
    from labaug.summary import resnet_table

    lines: list[str] = []
    base = root / "results" / "resnet"
    for folder in sorted(p for p in base.glob("*") if p.is_dir()) if base.is_dir() else []:
        whole = base / f"{folder.name}.nc"
        if whole.is_file():
            ds, note = read_netcdf(whole), f"`results/resnet/{folder.name}.nc`"
        else:
            parts = sorted(folder.rglob("seed*.nc"))
            if not parts:
                continue
            ds = aggregate([read_netcdf(p) for p in parts])
            note = (f"{len(parts)} finished runs under `results/resnet/{folder.name}/` (not all "
                    "runs finished: the others are left out, or blank)")
        lines += ["", f"Class channels, {folder.name}, from {note}:", "", *resnet_table(ds)]
    return lines


def _benchmark_seconds(tsv: Path) -> float | None:
    """The wall seconds in a Snakemake benchmark file, or None when it is missing."""
    if not tsv.is_file():
        return None
    header, values = tsv.read_text().splitlines()[:2]
    return float(dict(zip(header.split("\t"), values.split("\t"), strict=True))["s"])


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
    t = sub.add_parser("report", help="print the README's GPU tables from run's folder(s)")
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
