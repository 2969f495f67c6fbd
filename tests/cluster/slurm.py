"""A one-node SLURM cluster (Debian's slurm-wlm + munge) started in a temp dir.

Everything lives under one directory: the munge key and socket, slurm.conf,
gres.conf, the state/spool dirs and the daemon logs. Clients find the cluster
through ``SLURM_CONF`` (see :meth:`SlurmCluster.env`), so nothing under /etc is
touched and nothing needs systemd. The node is this machine, declared with the
CPUs and memory ``slurmd -C`` reports (at least what one job of
profiles/slurm asks for), plus a ``gpu`` GRES with a count and no GPU device
behind it, so that jobs asking for a GPU are accepted and scheduled.

Run it by hand:  python -m tests.cluster.slurm  (starts, submits, stops).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

APT_PACKAGES = ("slurm-wlm", "munge")
REQUIRED_BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scancel")


class SlurmUnavailable(RuntimeError):
    """SLURM is not installed and cannot be installed here."""


def missing_binaries() -> list[str]:
    """Names of the SLURM/munge programs not found on PATH (or in /usr/sbin)."""
    path = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin" + os.pathsep + "/sbin"
    return [b for b in REQUIRED_BINARIES if shutil.which(b, path=path) is None]


def ensure_installed() -> None:
    """Install slurm-wlm and munge with apt-get when missing (needs root)."""
    if not missing_binaries():
        return
    if shutil.which("apt-get") is None:
        raise SlurmUnavailable("slurm-wlm/munge are not installed and there is no apt-get")
    if os.geteuid() != 0:
        raise SlurmUnavailable(
            "slurm-wlm/munge are not installed and installing them needs root "
            "(apt-get install slurm-wlm munge)"
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *APT_PACKAGES],
    ):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SlurmUnavailable(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    still = missing_binaries()
    if still:
        raise SlurmUnavailable(f"after apt-get install, still missing: {still}")


def _sbin(name: str) -> str:
    path = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin" + os.pathsep + "/sbin"
    found = shutil.which(name, path=path)
    if found is None:
        raise SlurmUnavailable(f"{name} not found")
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _node_hardware() -> dict[str, str]:
    """The node line fields ``slurmd -C`` reports for this machine."""
    out = subprocess.run(
        [_sbin("slurmd"), "-C"], capture_output=True, text=True, check=True
    ).stdout
    fields = dict(re.findall(r"(\w+)=(\S+)", out.splitlines()[0]))
    return fields


class SlurmCluster:
    """munged + slurmctld + slurmd for one node, all state under ``root``."""

    def __init__(self, root: Path | None = None, gpus: int = 1, min_cpus: int = 4,
                 min_memory_mb: int = 32_000) -> None:
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="slurm-"))
        self.gpus = gpus
        self.min_cpus = min_cpus
        self.min_memory_mb = min_memory_mb
        self.partition = "compute"
        self.gpu_partition = "gpu"
        self.conf = self.root / "etc" / "slurm.conf"
        self.munge_socket = self.root / "munge" / "munge.socket"
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: dict[str, Path] = {}
        self.node = ""

    # --- configuration ---------------------------------------------------------
    def env(self) -> dict[str, str]:
        """Environment for SLURM clients (sbatch, squeue, snakemake) to reach the cluster."""
        env = dict(os.environ)
        env["SLURM_CONF"] = str(self.conf)
        env["PATH"] = f"{self.root / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        # Never let an outer SLURM allocation leak into the test's jobs.
        for key in list(env):
            if key.startswith("SLURM_") and key != "SLURM_CONF":
                del env[key]
        return env

    def _write_files(self) -> None:
        hw = _node_hardware()
        self.node = hw["NodeName"]
        for sub in ("etc", "munge", "state", "spool", "log", "bin"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        # Inside a job, snakemake-executor-plugin-slurm's jobstep runs the rule
        # through a nested `srun` and strips every SLURM_* variable, SLURM_CONF
        # included, from its environment, so srun would look for the config at
        # the compiled-in /etc/slurm/slurm.conf (a real cluster's location). This
        # cluster keeps its config in the temp dir, so `srun` on the jobs' PATH
        # is a two-line wrapper that points the real srun at it.
        srun = self.root / "bin" / "srun"
        srun.write_text(f'#!/bin/sh\nSLURM_CONF="{self.conf}" exec {_sbin("srun")} "$@"\n')
        srun.chmod(0o755)
        # munged wants its socket directory searchable by everyone.
        os.chmod(self.root / "munge", 0o711)
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o600)
        # The node is this machine, but never smaller than one job of the SLURM
        # profile asks for (the ResNet rule: 4 threads, 16 GB), so every job of
        # the real profile schedules on a 2-core CI box. config_overrides makes
        # slurmd accept a declaration larger than what it detects; nothing
        # enforces CPU or memory limits here (no cgroups), so jobs just share.
        cpus = max(int(hw["CPUs"]), self.min_cpus)
        memory = max(int(hw["RealMemory"]), self.min_memory_mb)
        node_line = (
            f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={cpus} Boards=1 "
            f"SocketsPerBoard=1 CoresPerSocket={cpus} ThreadsPerCore=1 "
            f"RealMemory={memory} Gres=gpu:{self.gpus} State=UNKNOWN"
        )
        user = _current_user()
        conf = f"""\
# Generated by tests/cluster/slurm.py: a one-node cluster for integration tests.
ClusterName=labaugtest
SlurmctldHost={self.node}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser={user}
SlurmdUser={user}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket}
StateSaveLocation={self.root / "state"}
SlurmdSpoolDir={self.root / "spool"}
SlurmctldPidFile={self.root / "state" / "slurmctld.pid"}
SlurmdPidFile={self.root / "spool" / "slurmd.pid"}
SlurmctldLogFile={self.root / "log" / "slurmctld.log"}
SlurmdLogFile={self.root / "log" / "slurmd.log"}
SlurmctldDebug=info
SlurmdDebug=info
# A container has no systemd and may have no writable cgroup tree: track
# processes through /proc and bind nothing.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
# Consumable CPUs, memory and GRES, so --mem/--gpus are honoured.
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
ReturnToService=2
SlurmdParameters=config_overrides
DefMemPerCPU=1000
# Short timers: the test cluster should come up and react within seconds.
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=3600
KillWait=5
Waittime=0
{node_line}
# Partition names match profiles/slurm/config.yaml; both hold the one node.
PartitionName={self.partition} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP
PartitionName={self.gpu_partition} Nodes={self.node} MaxTime=INFINITE State=UP
"""
        self.conf.write_text(conf)
        # The gpu GRES: a count, and no GPU device behind it. Slurm 22.05's
        # slurmd unconditionally drops a gpu GRES without File= from what it
        # reports ("Removing file-less GPU"), after which the controller drains
        # the node. So each GPU is named by a plain empty file in the temp dir:
        # not a device, never opened; it only gives slurmd an index to hand out
        # (CUDA_VISIBLE_DEVICES) so --gres=gpu:1 / --gpus=1 jobs schedule.
        gpu_dir = self.root / "gpu"
        gpu_dir.mkdir(exist_ok=True)
        lines = []
        for i in range(self.gpus):
            (gpu_dir / f"gpu{i}").touch()
            lines.append(f"Name=gpu Count=1 File={gpu_dir / f'gpu{i}'}")
        (self.root / "etc" / "gres.conf").write_text(
            "# Generated by tests/cluster/slurm.py\nAutoDetect=off\n" + "\n".join(lines) + "\n"
        )

    # --- lifecycle -------------------------------------------------------------
    def _spawn(self, name: str, cmd: list[str]) -> None:
        log = self.root / "log" / f"{name}.out"
        self._logs[name] = log
        with open(log, "wb") as fh:
            self._procs[name] = subprocess.Popen(
                cmd,
                stdout=fh,
                stderr=subprocess.STDOUT,
                env=self.env(),
                start_new_session=True,
            )

    def start(self, timeout: float = 60.0) -> SlurmCluster:
        """Install if needed, write the configs, start the daemons, wait for an idle node."""
        ensure_installed()
        self._write_files()
        try:
            self._start_daemons(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_daemons(self, timeout: float) -> None:
        munge_dir = self.root / "munge"
        self._spawn(
            "munged",
            [
                _sbin("munged"),
                "--foreground",
                "--force",
                f"--socket={self.munge_socket}",
                f"--key-file={munge_dir / 'munge.key'}",
                f"--pid-file={munge_dir / 'munged.pid'}",
                f"--seed-file={munge_dir / 'munged.seed'}",
                f"--log-file={self.root / 'log' / 'munged.log'}",
            ],
        )
        self._wait(lambda: self.munge_socket.exists(), timeout, "munged socket")
        self._spawn("slurmctld", [_sbin("slurmctld"), "-D", "-i", "-f", str(self.conf)])
        self._wait(self._controller_up, timeout, "slurmctld")
        self._spawn("slurmd", [_sbin("slurmd"), "-D", "-f", str(self.conf)])
        self._wait(self._node_idle, timeout, "node idle in sinfo")

    def _check_alive(self) -> None:
        for name, proc in self._procs.items():
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {proc.returncode}:\n{self.logs()}"
                )

    def _wait(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            if ready():
                return
            time.sleep(0.3)
        raise TimeoutError(f"SLURM test cluster: timed out waiting for {what}\n{self.logs()}")

    def _run(self, *cmd: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(cmd), env=self.env(), capture_output=True, text=True, timeout=30, check=False
        )

    def job_field(self, field: str) -> dict[str, str]:
        """Job id -> an squeue field (``%T`` state, ``%P`` partition) of every job still known."""
        out = self._run("squeue", "--states=all", "--noheader", f"--format=%i|{field}").stdout
        return dict(line.split("|", 1) for line in out.split())

    def _controller_up(self) -> bool:
        return self._run("scontrol", "ping").stdout.count("UP") > 0

    def _node_idle(self) -> bool:
        out = self._run("sinfo", "-h", "-N", "-o", "%T").stdout.split()
        return bool(out) and all(s.rstrip("*") == "idle" for s in out)

    def logs(self) -> str:
        """Tail of every daemon log, for failure messages."""
        parts = []
        for path in sorted((self.root / "log").glob("*")):
            text = path.read_text(errors="replace").splitlines()[-30:]
            parts.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(parts)

    def stop(self) -> None:
        """Cancel all jobs and stop the daemons this harness started (by pid)."""
        if "slurmctld" in self._procs and self._procs["slurmctld"].poll() is None:
            self._run("scancel", "--full", f"--user={_current_user()}")
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and self._run(
                    "squeue", "-h", "--states=RUNNING,COMPLETING,PENDING").stdout.strip():
                time.sleep(0.5)
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self._procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        # slurmstepd processes of jobs still running are children of slurmd's
        # session; make sure none outlives the cluster.
        for name in ("slurmd",):
            proc = self._procs.get(name)
            if proc is not None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def running(self) -> bool:
        """True while all three daemons are alive."""
        return bool(self._procs) and all(p.poll() is None for p in self._procs.values())

    def __enter__(self) -> SlurmCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _current_user() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


def _demo() -> None:
    """Start a cluster, run a CPU job and two kinds of GPU request, print what they saw, stop."""
    with SlurmCluster() as cluster:
        print(cluster._run("sinfo", "-N", "-o", "%N %P %c %m %G %T").stdout)
        for extra in ([], ["--gres=gpu:1"], ["--gpus=1", f"--partition={cluster.gpu_partition}"]):
            out = cluster._run("sbatch", "--parsable", "--wait",
                               f"--output={cluster.root / 'log' / 'job-%j.out'}", *extra,
                               "--wrap", "echo $(hostname) gpus=${SLURM_GPUS_ON_NODE:-0}")
            jobid = out.stdout.strip()
            text = (cluster.root / "log" / f"job-{jobid}.out").read_text().strip()
            request = " ".join(extra) or "(cpu)"
            print(f"sbatch {request}: exit {out.returncode}, job {jobid}: {text}")
    print(f"stopped; configs and logs are in {cluster.root}")


if __name__ == "__main__":
    _demo()
