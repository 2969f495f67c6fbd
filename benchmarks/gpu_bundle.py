"""The GPU checks' offline bundle: wheels of what the workflow needs beyond PyTorch, and the
datasets' official files, written where there is internet and installed where there is none.

``python benchmarks/gpu_checks.py bundle DEST`` writes it (see gpu_checks.py); ``run`` installs
it with `install_bundle`.
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

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
