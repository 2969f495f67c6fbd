"""The SLURM profile on a real one-node SLURM (Debian's slurm-wlm + munge) started here.

The harness (tests/cluster/slurm.py) installs the packages when missing (root + apt-get),
starts munged, slurmctld and slurmd from a generated slurm.conf in a temp dir, and stops
them at the end. The smoke DAG is submitted through ``--workflow-profile profiles/slurm``
exactly as a user would, plus ``--slurm-status-command squeue`` (no accounting daemon).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.slurm import SlurmCluster, SlurmUnavailable
from tests.cluster.smoke import REPO, SMALL, expected_figures, snakemake, write_overrides

pytestmark = pytest.mark.slow

# The run that fails on purpose: a NaN loss injected into one ResNet job (the GPU rule).
FAILING = {"dataset": "cifar10", "method": "mixup", "seed": "0"}
NAN_SPEC = f"{FAILING['dataset']}:{FAILING['method']}:{FAILING['seed']}:2"
FAILING_RESULT = "results/resnet/cifar10/resnet18/mixup/grid0/seed0.nc"

SLURM_ARGS = (
    "--workflow-profile", str(REPO / "profiles" / "slurm"),
    # The profile trains ResNet on cuda (its `config:`) and gives each ResNet job one GPU (its
    # set-resources). This cluster's GPU is a gres count with no device behind it, so the jobs
    # train on the CPU here: the device is overridden to cpu, while the GPU request stays the
    # profile's own, which is what the tests below check.
    "--config", "resnet={device: cpu}",
    "--slurm-status-command", "squeue",
    # Test-only speedups and evidence: poll soon, and keep every job's SLURM log.
    "--slurm-init-seconds-before-status-checks", "2", "--seconds-between-status-checks", "2",
    "--slurm-keep-successful-logs",
)
# The smoke DAG narrowed to what the checks below need: every kind of job (CPU and GPU rules,
# local rules, figures and summary) for one seed, one dataset, one variance and two methods, the
# failing one (Mixup) among them. Each job submitted starts Snakemake and imports torch on the
# node, so the narrow DAG halves the test's time and checks the same things.
SLURM_SMALL = {**SMALL, "variances": ["zero"], "methods": ["weight_decay", "mixup"]}
SUBMITTED = re.compile(r"Job \d+ has been submitted with SLURM jobid (\d+) \(log: (\S+)\)\.")


def _start(root: Path) -> SlurmCluster:
    try:
        return SlurmCluster(root).start()
    except SlurmUnavailable as exc:
        pytest.skip(f"SLURM cannot be installed on this machine: {exc}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    """A running one-node cluster for this module; stopped afterwards."""
    c = _start(tmp_path_factory.mktemp("slurm"))
    yield c
    c.stop()


class SlurmRun:
    """Two runs of the same command: one with a job failing, then the repair."""

    def __init__(self, workdir: Path, first: subprocess.CompletedProcess[str],
                 second: subprocess.CompletedProcess[str], figures: set[str],
                 built_first: set[str]) -> None:
        self.workdir = workdir
        self.built_first = built_first
        self.first = first
        self.second = second
        self.figures = figures

    def submissions(self) -> dict[str, Path]:
        """SLURM job id -> its SLURM log, from both runs' Snakemake output."""
        text = self.first.stderr + self.second.stderr
        return {jobid: Path(log) for jobid, log in SUBMITTED.findall(text)}


@pytest.fixture(scope="module")
def slurm_run(cluster: SlurmCluster, tmp_path_factory: pytest.TempPathFactory) -> SlurmRun:
    """The smoke DAG through profiles/slurm: first with one job failing, then repaired."""
    workdir = tmp_path_factory.mktemp("slurm_smoke")
    write_overrides(workdir, SLURM_SMALL)
    figures = expected_figures(workdir)
    failing_env = cluster.env()
    failing_env["LABAUG_INJECT_NAN"] = NAN_SPEC
    # --retries 0: the injected NaN fails every attempt alike; retrying only costs time.
    first = snakemake(workdir, *SLURM_ARGS, "--keep-going", "--retries", "0",
                      env=failing_env)
    built_first = {p.name for p in (workdir / "figures").glob("*.pdf")}
    second = snakemake(workdir, *SLURM_ARGS, env=cluster.env())
    return SlurmRun(workdir, first, second, figures, built_first)


def test_cluster_runs_cpu_and_gpu_jobs_and_stops(tmp_path: Path) -> None:
    c = _start(tmp_path / "c")
    try:
        info = c._run("sinfo", "-h", "-N", "-o", "%P %G %T").stdout.split()
        assert "gpu:1" in info and "idle" in info
        for extra in ([], ["--gres=gpu:1"], ["--gpus=1", "-p", c.gpu_partition]):
            out = c._run("sbatch", "--parsable", "--wait", f"--output={tmp_path}/%j.out",
                         *extra, "--wrap", "echo gpus=${SLURM_GPUS_ON_NODE:-0}")
            assert out.returncode == 0, out.stderr + c.logs()
            text = (tmp_path / f"{out.stdout.strip()}.out").read_text()
            assert text.strip() == ("gpus=0" if not extra else "gpus=1")
    finally:
        pids = [p.pid for p in c._procs.values()]
        c.stop()
    assert not c.running()
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(
            f"/proc/{pid}/status").read_text().lower(), f"daemon {pid} still running"


def test_failing_job_is_reported_and_keep_going_finishes_the_rest(slurm_run: SlurmRun) -> None:
    first = slurm_run.first
    out = first.stdout + first.stderr
    assert first.returncode != 0, out[-3000:]
    # (The job's own log, shown because of show-failed-logs, repeats the error inside it.)
    assert set(re.findall(r"Error in rule (\w+):", out)) == {"train_resnet"}, out[-3000:]
    failures = re.findall(r"SLURM-job '\d+' failed, SLURM status is: 'FAILED'", out)
    assert len(failures) == 1, out[-3000:]
    assert f"output: {FAILING_RESULT}" in out
    log = (slurm_run.workdir / FAILING_RESULT.replace("results/", "logs/", 1)
           ).with_suffix(".log")
    assert "NonFiniteLossError" in log.read_text() or "NonFiniteLossError" in out
    # --keep-going built everything that does not depend on the failed run.
    assert "figures/fig4.pdf" in slurm_run.figures and "figures/fig8.pdf" in slurm_run.figures
    # (Figs. 4 and 8 are drawn from the class-channel runs, the failed one among them.)
    expected = {Path(f).name for f in slurm_run.figures} - {"fig4.pdf", "fig8.pdf"}
    assert slurm_run.built_first == expected, out[-3000:]


def test_rerun_builds_every_figure_and_repeats_only_the_failed_job(slurm_run: SlurmRun) -> None:
    second = slurm_run.second
    out = second.stdout + second.stderr
    assert second.returncode == 0, out[-4000:]
    for figure in slurm_run.figures:
        assert (slurm_run.workdir / figure).read_bytes()[:5] == b"%PDF-", figure
    reran = set(re.findall(r"^(?:local)?rule (\w+):", out, flags=re.MULTILINE))
    assert reran == {"train_resnet", "aggregate_resnet", "figure", "summary", "all"}, reran
    assert (slurm_run.workdir / FAILING_RESULT).exists()


def test_training_jobs_ran_as_slurm_jobs(slurm_run: SlurmRun, cluster: SlurmCluster) -> None:
    submissions = slurm_run.submissions()
    by_rule: dict[str, list[str]] = {}
    for jobid, log in submissions.items():
        rule = next(p for p in log.parts if p.startswith("rule_"))
        by_rule.setdefault(rule.removeprefix("rule_"), []).append(jobid)
        # The plugin names each job's log after its SLURM job id, and it holds the job's run.
        assert log.name == f"{jobid}.log" and log.exists(), log
    results = slurm_run.workdir / "results"
    linear = sorted(results.glob("linear/*/*/seed*.nc"))
    resnet = sorted((results / "resnet").rglob("seed*.nc"))
    assert linear and resnet
    # one sweep job per (data, variance, method) writes the files of all its seeds
    assert len(by_rule["linear_sweep"]) == len({path.parent for path in linear})
    assert len(by_rule["train_resnet"]) == len(resnet) + 1  # the failed attempt, then its rerun
    for jobid in by_rule["linear_sweep"] + by_rule["train_resnet"]:
        text = submissions[jobid].read_text()
        assert re.search(r"rule (linear_sweep|train_resnet):", text), text[-2000:]
    # SLURM itself saw them: squeue still lists finished jobs (MinJobAge), with their states.
    states = cluster.job_field("%T")
    for jobid in by_rule["linear_sweep"]:
        assert states.get(jobid) == "COMPLETED", (jobid, states)
    assert [states.get(j) for j in by_rule["train_resnet"]].count("FAILED") == 1
    # Downloads, aggregation and figures are localrules: they never reached the queue.
    assert not {"fetch_raw", "aggregate_linear", "aggregate_resnet", "figure"} & set(by_rule)


def test_gpu_rule_got_a_gpu_in_the_gpu_partition(slurm_run: SlurmRun,
                                                 cluster: SlurmCluster) -> None:
    logs = [log for log in slurm_run.submissions().values() if "rule_train_resnet" in str(log)]
    assert logs
    for log in logs:
        text = log.read_text()
        assert re.search(r"resources: .*\bgpu=1\b", text), text[-2000:]
        assert "slurm_partition=gpu" in text, text[-2000:]
    # SLURM's own record of each job's partition (squeue keeps finished jobs, MinJobAge);
    # the controller log is no good here: the main and the backfill scheduler word it apart.
    partitions = cluster.job_field("%P")
    for log in logs:
        assert partitions.get(log.stem) == "gpu", (log.stem, partitions)


def _gpu_tres(cluster: SlurmCluster, jobid: str) -> str:
    """The GPU part of what SLURM recorded for a job (its TresPerJob and TRES fields)."""
    text = cluster._run("scontrol", "show", "job", jobid).stdout
    fields = re.findall(r"\b(?:TresPerJob|TRES)=(\S*)", text)
    assert fields, text
    return ",".join(part for f in fields for part in f.split(",") if "gpu" in part)


def test_no_other_job_requests_a_gpu(slurm_run: SlurmRun, cluster: SlurmCluster) -> None:
    submissions = slurm_run.submissions()
    others = {jobid: log for jobid, log in submissions.items()
              if "rule_train_resnet" not in str(log)}
    assert any("rule_linear_sweep" in str(log) for log in others.values())
    partitions = cluster.job_field("%P")
    for jobid, log in others.items():
        text = log.read_text()
        resources = re.search(r"resources: (.*)", text)
        assert resources and not re.search(r"\bgpu=", resources.group(1)), text[-2000:]
        assert partitions.get(jobid) == "compute", (jobid, partitions)
        assert _gpu_tres(cluster, jobid) == "", jobid
    # SLURM's own record: each ResNet job was allocated a GPU (the profile's request).
    for jobid, log in submissions.items():
        if "rule_train_resnet" in str(log):
            assert "gpu" in _gpu_tres(cluster, jobid), jobid
