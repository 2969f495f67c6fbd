"""`make docs`: the generated parts of the documentation, made from result files only.

    python -m labaug.docs          # = make docs, after `make quick`

Writes, each file (or block) headed with the command, the preset and the commit of its results:

- ``docs/figures/{figure}.png``: the quick preset's figures, copied from the PNG previews that
  the figure rule writes beside each PDF (``runs/quick/figures/``);
- ``docs/figures/study_laptop.png`` and ``docs/figures/study_{folder}.png``: Fig. 8 of the
  class-channel study, drawn by ``labaug.plots.fig8`` from the laptop's and each GPU check's
  result file;
- ``docs/results/quick.md``: the quick preset's ``results/summary.md``;
- ``docs/results/diagnosis.md``: the class-channel study (Fig. 8) on a laptop CPU, from
  ``runs/diagnosis`` (`make diagnosis`) where present, else from its kept copy under
  ``docs/runs/diagnosis_cpu/``, and on a GPU, from each output folder of
  ``benchmarks/gpu_checks.py run`` kept under ``docs/gpu/`` (through ``gpu_checks.py report``);
- ``docs/results/benchmarks.md``: the benchmark outputs kept under ``docs/benchmarks/``;
- in ``README.md``, the blocks between ``<!-- generated: NAME -->`` and
  ``<!-- end generated -->``: the verdict table (one row per claim of the paper) and the
  class-channel table (where weight decay avoids the channels).

The "holds?" cells are computed by the rules in `VERDICT_RULES`, stated on the page.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr
import yaml

from labaug import augment, models
from labaug.results import GRID_DIM, METHOD_DIM, MODEL_DIM, methods_of, models_of, read_netcdf

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
BEGIN = re.compile(r"<!-- generated: (\w+) -->\n.*?<!-- end generated -->", re.S)

LABEL_AUGMENTATIONS = ("label_smoothing", "mixup", "cutmix")
"""The methods the paper's claims are about (weight decay is the contrast, ERM the baseline)."""

VERDICT_RULES = {
    "synthetic": "every label augmentation's mean high-variance weight norm at the top of its "
                 "grid is below a tenth of weight decay's",
    "test_error": "every label augmentation's test error, averaged over the upper half of its "
                  "grid, is above weight decay's",
    "pixel_ratio": "every label augmentation's pixel ratio at the top of its grid is above "
                   "weight decay's",
    "channels": "every label augmentation's final zero-channel test error is at least 0.1 above "
                "weight decay's",
    "theory": "weight decay's trained weight norm is within 1% of the exact minimizer at every "
              "compared value, and label smoothing's and Mixup's are below 0.01 at the top of "
              "the grid (their exact minimizers are 0)",
    "avoid": "weight decay at its strongest value follows the channels on fewer than half of "
             "the test images (mean over seeds) while it still learns the images (zero-channel "
             "test error below 0.5), and every label augmentation follows them on more than half",
}
"""When a claim counts as holding, per check."""


@dataclass(frozen=True)
class Source:
    """A set of results the docs are made from: a preset's output root."""

    preset: str
    kept: Path | None = None
    """A folder under docs/ holding a copy of its aggregated results (refreshed when the
    output root has them)."""

    @property
    def root(self) -> Path:
        """The preset's output root."""
        with open(REPO / "presets" / f"{self.preset}.yaml") as fh:
            return REPO / str(yaml.safe_load(fh)["output_root"])

    @property
    def command(self) -> str:
        """The command that makes its results."""
        return f"make {self.preset}"


QUICK = Source("quick")
DIAGNOSIS = Source("diagnosis", kept=DOCS / "runs" / "diagnosis_cpu")
KEPT_FILES = ("results/summary.md",)
"""Files of an output root kept beside its aggregated class-channel results."""


def class_channel_files(root: Path) -> list[Path]:
    """The aggregated class-channel results under an output root (not Fig. 5's examples)."""
    return sorted(p for p in (root / "results" / "resnet").glob("*.nc")
                  if not p.stem.endswith("_example"))


def mean(values: xr.DataArray | np.ndarray) -> float:
    """The NaN-aware mean."""
    return float(np.nanmean(np.asarray(values, dtype=np.float64)))


def top(ds: xr.Dataset, method: str, variable: str) -> float:
    """``variable`` at the top of ``method``'s grid, mean over seeds."""
    sel = ds.sel({METHOD_DIM: method})
    keep = np.flatnonzero(~np.isnan(sel["hp_value"].values))
    return mean(sel[variable].isel({GRID_DIM: int(keep[-1])}))


def upper_half(ds: xr.Dataset, method: str, variable: str) -> float:
    """``variable`` averaged over the upper half of ``method``'s grid and the seeds."""
    sel = ds.sel({METHOD_DIM: method})
    keep = np.flatnonzero(~np.isnan(sel["hp_value"].values))
    return mean(sel[variable].isel({GRID_DIM: keep[len(keep) // 2:]}))


def yes_no(holds: bool) -> str:
    """The verdict cell."""
    return "yes" if holds else "**no**"


def cells(values: Mapping[str, float], digits: int = 3) -> str:
    """'Weight decay 0.683, Label smoothing 0.002, ...' in the order given."""
    return ", ".join(f"{augment.title(m)} {v:.{digits}f}" for m, v in values.items())


def contrast(ds: xr.Dataset, value: Callable[[xr.Dataset, str, str], float], variable: str
             ) -> dict[str, float]:
    """``value`` of weight decay and of each label augmentation ``ds`` has."""
    return {m: value(ds, m, variable) for m in ("weight_decay", *LABEL_AUGMENTATIONS)
            if m in methods_of(ds)}


def label_augmentations(values: Mapping[str, float]) -> list[float]:
    """The label augmentations' values."""
    return [v for m, v in values.items() if m in LABEL_AUGMENTATIONS]


def channel_run(ds: xr.Dataset, model: str, method: str, grid: int | None = None
                ) -> xr.Dataset:
    """One model's and method's class-channel run at grid index ``grid`` (default: the method's
    strongest value, the last one it has)."""
    sel = ds.sel({MODEL_DIM: model, METHOD_DIM: method})
    if grid is None:
        grid = int(np.flatnonzero(~np.isnan(sel["hp_value"].values))[-1])
    return sel.isel({GRID_DIM: grid})


def final(run: xr.Dataset, variable: str) -> float:
    """``variable`` at the last epoch, mean over seeds."""
    return mean(run[variable].isel(epoch=-1))


@contextmanager
def gpu_results(folder: Path) -> Iterator[Path | None]:
    """The class-channel result file in a GPU check's ``full_runs.tar.gz`` (None without)."""
    archive = folder / "full_runs.tar.gz"
    with tempfile.TemporaryDirectory() as tmp:
        if not archive.is_file():
            yield None
            return
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        found = class_channel_files(Path(tmp))
        yield found[0] if found else None


def gpu_folders() -> list[Path]:
    """The kept output folders of ``benchmarks/gpu_checks.py run``, by name."""
    base = DOCS / "gpu"
    return sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []


def gpu_machine(folder: Path) -> str:
    """The GPU a check ran on, from its environment.json."""
    import json

    env = folder / "environment.json"
    return str(json.loads(env.read_text()).get("gpu", "a GPU")) if env.is_file() else "a GPU"


def describe(ds: xr.Dataset, model: str) -> str:
    """'ResNet-18, width 64, 60000 training images, 6 epochs' for one model of a result."""
    from labaug.results import model_descriptions

    names = dict(zip(models_of(ds), model_descriptions(ds), strict=True))
    return (f"{names.get(model, models.title(model))}, {ds.attrs.get('n_train', '?')} training "
            f"images, {ds.sizes['epoch']} epochs")


def commit_of(ds: xr.Dataset) -> str:
    """The short commit in a result file's provenance."""
    return str(ds.attrs.get("git_commit", "unknown"))[:12]


def header(what: str, source: str, commit: str) -> str:
    """The first lines of a generated file: what made it, from what, at which commit."""
    return (f"<!-- Generated by `make docs` (python -m labaug.docs) from {source}, results of "
            f"commit {commit}; edit labaug/docs.py, not this file. -->\n\n# {what}\n")


# --- the verdict table ----------------------------------------------------------------------


def verdict_rows(quick: Path, gpu: Sequence[tuple[str, xr.Dataset]]) -> list[str]:
    """One row per claim of the paper: what the paper shows, the quick preset's numbers, the
    GPU's numbers (where a GPU check ran it), and whether it holds (`VERDICT_RULES`)."""
    from labaug.exact import compare

    results = quick / "results"
    syn = read_netcdf(results / "linear" / "synthetic_zero.nc")
    syn_low = read_netcdf(results / "linear" / "synthetic_low.nc")
    images = sorted((results / "linear").glob("*_zero.nc"))
    image = read_netcdf(next(p for p in images if not p.name.startswith("synthetic")))
    channels = read_netcdf(class_channel_files(quick)[0])
    theory = compare(syn, read_netcdf(results / "theory" / "synthetic_zero.nc"))

    w_high = contrast(syn, top, "w_high_norm")
    w_low = contrast(syn_low, top, "w_high_norm")
    syn_holds = all(v < 0.1 * w_high["weight_decay"] for v in label_augmentations(w_high))
    err = contrast(image, upper_half, "test_error")
    ratio = contrast(image, top, "pixel_ratio")
    pair = str(image.attrs.get("class_pair", ""))
    model = models_of(channels)[0]
    ch = {m: final(channel_run(channels, model, m, 0), "test_error")
          for m in ("weight_decay", *LABEL_AUGMENTATIONS) if m in methods_of(channels)}
    ch_holds = all(v >= ch["weight_decay"] + 0.1 for v in label_augmentations(ch))

    gaps = theory.sel({METHOD_DIM: "weight_decay"})["gap"].values
    la_top: dict[str, float] = {m: float(theory.sel({METHOD_DIM: m})["trained_mean"].values[
        np.flatnonzero(~np.isnan(theory.sel({METHOD_DIM: m})["hp_value"].values))[-1]])
        for m in ("label_smoothing", "mixup") if m in methods_of(theory)}
    theory_holds = bool(np.nanmax(np.abs(gaps)) < 0.01) and all(
        v < 0.01 for v in la_top.values())

    gpu_cells, gpu_holds = [], []
    for name, ds in gpu:
        run = {m: final(channel_run(ds, "resnet18", m, 0), "test_error")
               for m in ("weight_decay", *LABEL_AUGMENTATIONS) if m in methods_of(ds)}
        gpu_cells.append(f"{describe(ds, 'resnet18')} on {name}: " + cells(run))
        gpu_holds.append(all(v >= run["weight_decay"] + 0.1 for v in label_augmentations(run)))
    rows = [
        "| claim | paper | here on a laptop (quick preset) | here at the paper's scale (GPU) "
        "| holds? |",
        "|---|---|---|---|---|",
        "| Figs. 1, 6: label smoothing and Mixup drop the high-variance feature, weight decay "
        "keeps it | the high-variance weight goes to 0 with label smoothing and Mixup, stays "
        "with weight decay | high-variance weight norm at the top of each grid: "
        f"{cells(w_high)} (zero variance); {cells(w_low)} (low variance) | the quick preset "
        f"runs this at the paper's size | {yes_no(syn_holds)} |",
        "| Sec. 3: the trained models approach the exact minimizers | (theorems) | weight "
        f"decay within {100 * float(np.nanmax(np.abs(gaps))):.2f}% of its exact minimizer; at "
        f"the top of the grid {cells(la_top)} (exact: 0) | the quick preset runs this at the "
        f"paper's size | {yes_no(theory_holds)} |",
        "| Figs. 2, 7: label augmentation raises a binary image task's test error | higher test "
        "error than weight decay on CIFAR pairs | Fashion-MNIST "
        f"{pair or 'pair'}, test error over the upper half of each grid: {cells(err)} | "
        "not run (CIFAR cannot be downloaded where this ran) | "
        f"{yes_no(all(v > err['weight_decay'] for v in label_augmentations(err)))} |",
        "| Fig. 3: label augmentation leans on the identifying pixel | the pixel's weight "
        "ratio grows with label augmentation, not with weight decay | pixel ratio at the top "
        f"of each grid: {cells(ratio)} | not run | "
        f"{yes_no(all(v > ratio['weight_decay'] for v in label_augmentations(ratio)))} |",
        "| Fig. 4: with class channels, label augmentation overfits them and weight decay does "
        "not | weight decay's test error falls, label smoothing's and Mixup's rise (ResNet-18, "
        f"CIFAR) | {describe(channels, model)}: final zero-channel test error {cells(ch)} | "
        f"{'; '.join(gpu_cells) or 'no GPU check kept'} | laptop: {yes_no(ch_holds)}"
        + "".join(f"; GPU: {yes_no(h)}" for h in gpu_holds) + " |",
        "",
        "*Holds* means: Figs. 1, 6: " + VERDICT_RULES["synthetic"] + "; Sec. 3: "
        + VERDICT_RULES["theory"] + "; Figs. 2, 7: " + VERDICT_RULES["test_error"]
        + "; Fig. 3: " + VERDICT_RULES["pixel_ratio"] + "; Fig. 4: "
        + VERDICT_RULES["channels"] + ".",
    ]
    return rows


# --- the class-channel table ----------------------------------------------------------------


def study_cell(ds: xr.Dataset | None, model: str) -> tuple[str, str, bool | None]:
    """Weight decay's and the label augmentations' channel following (and test error) for one
    model, and whether weight decay avoids the channels (`VERDICT_RULES`['avoid'])."""
    if ds is None or model not in models_of(ds):
        return "not run", "not run", None
    wd = channel_run(ds, model, "weight_decay")
    wd_value = float(wd["hp_value"].values)
    wd_follow = final(wd, "channel_following")
    la = {m: final(channel_run(ds, model, m), "channel_following")
          for m in LABEL_AUGMENTATIONS if m in methods_of(ds)}
    holds = (wd_follow < 0.5 and final(wd, "test_error") < 0.5
             and all(v > 0.5 for v in la.values()))
    return (f"{wd_follow:.2f} (lambda {wd_value:g}; test error "
            f"{final(wd, 'test_error'):.2f})", cells(la, 2), holds)


def study_rows(cpu: xr.Dataset | None, gpu: Sequence[tuple[str, xr.Dataset]]) -> list[str]:
    """One row per model of the class-channel study: channel following on the laptop and on the
    GPU(s), and whether weight decay avoids the channels while label augmentation follows."""
    names = list(dict.fromkeys([*(models_of(cpu) if cpu is not None else []),
                                *(m for _, ds in gpu for m in models_of(ds))]))
    head = ["model", "laptop: weight decay", "laptop: label augmentation"]
    for name, _ in gpu:
        head += [f"{name}: weight decay", f"{name}: label augmentation"]
    head.append("weight decay avoids the channels, label augmentation follows them?")
    rows = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    note = ("", "Cells: final-epoch channel following, mean over seeds (test error in brackets "
            "for weight decay). *Yes* means: " + VERDICT_RULES["avoid"] + ".")
    for model in names:
        wd, la, holds = study_cell(cpu, model)
        row, verdicts = [models.title(model), wd, la], [("laptop", holds)]
        for name, ds in gpu:
            wd, la, holds = study_cell(ds, model)
            row += [wd, la]
            verdicts.append((name, holds))
        row.append("; ".join(f"{where}: {yes_no(h)}" for where, h in verdicts if h is not None))
        rows.append("| " + " | ".join(row) + " |")
    return [*rows, *note]


# --- pages ----------------------------------------------------------------------------------


def keep(source: Source) -> Path | None:
    """The folder the docs read a source's class-channel results from: its output root when it
    has them (refreshing the kept copy), else the kept copy; None when neither has them."""
    live = class_channel_files(source.root)
    if source.kept is None:
        return source.root if live else None
    if live:
        shutil.rmtree(source.kept, ignore_errors=True)
        for path in [*live, *(source.root / f for f in KEPT_FILES)]:
            if path.is_file():
                target = source.kept / path.relative_to(source.root)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
    return source.kept if class_channel_files(source.kept) else None


def shifted(summary: str) -> str:
    """A results/summary.md without its title, its headings one level down."""
    body = re.sub(r"^# Results summary\n", "", summary)
    return re.sub(r"^(#+) ", r"#\1 ", body, flags=re.M)


def summary_page(title: str, root: Path, source: str) -> str:
    """A results page: the output root's results/summary.md under a header."""
    files = sorted((root / "results").glob("*/*.nc"))
    commit = commit_of(read_netcdf(files[0])) if files else "unknown"
    return header(title, source, commit) + shifted((root / "results" / "summary.md").read_text())


def gpu_page_part(folder: Path) -> str:
    """A GPU check's tables (``benchmarks/gpu_checks.py report FOLDER``)."""
    got = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_checks.py"), "report",
                          str(folder)], capture_output=True, text=True, cwd=REPO, check=True)
    relative = folder.relative_to(REPO)
    return (f"\n## On {gpu_machine(folder)} (`{relative}`)\n\nMade by `python "
            f"benchmarks/gpu_checks.py report {relative}` from the output of `gpu_checks.py "
            f"run` kept in that folder (its `run.log` names the preset and targets).\n\n"
            + got.stdout)


def benchmarks_page() -> str:
    """The kept benchmark outputs under docs/benchmarks/, each as printed."""
    parts = []
    for path in sorted((DOCS / "benchmarks").glob("*.txt")):
        lines = path.read_text().splitlines()
        command = lines[0].removeprefix("$ ") if lines and lines[0].startswith("$ ") else ""
        parts += [f"\n## `{path.stem}`\n", f"`{command}`, output as printed "
                  f"(`docs/benchmarks/{path.name}`):\n", "```", *lines[1:], "```"]
    for folder in gpu_folders():
        cost = folder / "diagnosis_cost.log"
        if cost.is_file():
            parts += [f"\n## Diagnosis cost on {gpu_machine(folder)}\n",
                      f"`benchmarks/diagnosis_cost.py`, from `{cost.relative_to(REPO)}`:\n",
                      "```", *cost.read_text().splitlines(), "```"]
    return (header("Benchmark outputs", "the outputs kept under docs/benchmarks/ and docs/gpu/",
                   "of each output's own header")
            + "\n".join(parts) + "\n")


def replace_block(text: str, name: str, lines: Sequence[str], note: str) -> str:
    """``text`` with its generated block ``name`` replaced (it must have one)."""
    block = (f"<!-- generated: {name} -->\n<!-- {note} -->\n" + "\n".join(lines)
             + "\n<!-- end generated -->")
    found = [m for m in BEGIN.finditer(text) if m.group(1) == name]
    if not found:
        raise ValueError(f"README.md has no block '<!-- generated: {name} -->' ... "
                         "'<!-- end generated -->'")
    m = found[0]
    return text[:m.start()] + block + text[m.end():]


def study_figure(result: Path, name: str) -> None:
    """Fig. 8 of one class-channel study, drawn from its result file, as docs/figures/NAME.png."""
    from labaug import plots

    with tempfile.TemporaryDirectory() as tmp:
        plots.fig8(Path(tmp) / "fig8.pdf", **{result.stem: result})
        shutil.copyfile(Path(tmp) / "fig8.png", DOCS / "figures" / f"{name}.png")
    print(f"wrote docs/figures/{name}.png")


def write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (creating its folder), and say so."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"wrote {path.relative_to(REPO)}")


def build(quick: Source = QUICK, diagnosis: Source = DIAGNOSIS) -> None:
    """Regenerate every generated file (see the module docstring)."""
    root = quick.root
    if not (root / "results" / "summary.md").is_file():
        raise FileNotFoundError(f"{root.relative_to(REPO)}/results/summary.md is missing: run "
                                f"`{quick.command}` first")
    figures = DOCS / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    for old in figures.glob("*.png"):
        old.unlink()
    for png in sorted((root / "figures").glob("*.png")):
        shutil.copyfile(png, figures / png.name)
        print(f"wrote docs/figures/{png.name}")
    source = f"`{root.relative_to(REPO)}` (`{quick.command}`, presets/{quick.preset}.yaml)"
    write(DOCS / "results" / "quick.md",
          summary_page("Results of the quick preset", root, source))

    cpu_root = keep(diagnosis)
    with contextlib.ExitStack() as stack:
        gpu = []
        for folder in gpu_folders():
            found = stack.enter_context(gpu_results(folder))
            if found is not None:
                gpu.append((gpu_machine(folder), read_netcdf(found)))
                study_figure(found, f"study_{folder.name}")
        cpu = None
        if cpu_root is not None:
            cpu_file = class_channel_files(cpu_root)[0]
            cpu = read_netcdf(cpu_file)
            study_figure(cpu_file, "study_laptop")
        parts = []
        if cpu_root is not None:
            where = cpu_root.relative_to(REPO)
            parts.append(f"\n## On a laptop CPU (`{diagnosis.command}`, kept in `{where}`)\n"
                         + shifted((cpu_root / "results" / "summary.md").read_text()))
        parts += [gpu_page_part(folder) for folder in gpu_folders()]
        commit = ", ".join([*([f"{commit_of(cpu)} (laptop)"] if cpu is not None else []),
                            *(f"{commit_of(ds)} ({name})" for name, ds in gpu)]) or "none"
        write(DOCS / "results" / "diagnosis.md",
              header("The class-channel study (Fig. 8)", f"`{diagnosis.command}` and the GPU "
                     "check outputs under docs/gpu/", commit) + "\n".join(parts))
        write(DOCS / "results" / "benchmarks.md", benchmarks_page())

        readme = (REPO / "README.md").read_text()
        quick_commit = commit_of(read_netcdf(class_channel_files(root)[0]))
        readme = replace_block(
            readme, "verdict", verdict_rows(root, gpu),
            f"made by make docs from runs/quick (results of commit {quick_commit}) and docs/gpu/")
        readme = replace_block(
            readme, "study", study_rows(cpu, gpu),
            f"made by make docs from {diagnosis.command} and docs/gpu/ (results of commit "
            f"{commit})")
        write(REPO / "README.md", readme)


def main(argv: Sequence[str] | None = None) -> int:
    """The command line."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.parse_args(argv)
    build()
    return 0


if __name__ == "__main__":
    sys.exit(main())
