"""The GPU checks' ``run`` and ``collect`` steps: the benchmark, the ``gpu`` tests, and the
full-size runs started in the background and collected (see gpu_checks.py for the order).
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from gpu_bundle import REPO, check_imports, child_env, install_bundle

PRESET = "presets/gpu_check.yaml"
STEPS = ("benchmark", "full", "tests")
POLL_SECONDS = 5.0
STILL_RUNNING = 3
"""``run``'s exit status when every step so far passed but the full runs are still training."""


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
