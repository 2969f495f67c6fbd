"""The GPU checks' ``report`` step: the GPU tables (markdown) from the files that
``run`` and ``collect`` wrote.
"""

from __future__ import annotations

import json
import re
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import gpu_bundle  # noqa: F401  (puts this checkout's labaug on the import path)

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
    """The GPU tables (markdown) from the files that ``run`` (and ``collect``) wrote;
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
