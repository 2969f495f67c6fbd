"""The install pins: constraints.txt covers every dependency, matches what is installed, and
agrees with the conda environment's PyTorch pins."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from importlib import metadata
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def pins(path: Path = ROOT / "constraints.txt") -> dict[str, str]:
    """constraints.txt as {canonical name: version}; every line that is not a comment is
    name==version."""
    out: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", line)
        assert match, f"{path.name}:{number}: {line!r} is not an exact name==version pin"
        name = canonicalize_name(match[1])
        assert name not in out, f"{path.name}:{number}: {match[1]} is pinned twice"
        out[name] = match[2]
    return out


def project_requirements() -> list[Requirement]:
    """pyproject.toml's dependencies and its test extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in
            project["dependencies"] + project["optional-dependencies"]["test"]]


def test_every_dependency_is_pinned_at_a_version_it_allows() -> None:
    pinned = pins()
    for req in project_requirements():
        name = canonicalize_name(req.name)
        assert name in pinned, f"pyproject.toml requires {req}, constraints.txt does not pin it"
        assert req.specifier.contains(pinned[name], prereleases=True), (
            f"constraints.txt pins {req.name}=={pinned[name]}, pyproject.toml asks for {req}")


def test_what_is_installed_is_what_constraints_pin() -> None:
    # A drifted environment (a package upgraded by hand) is caught here, before it lets a
    # lint or a test pass that CI, installing the pins, would fail. `make setup` reinstalls.
    pinned = pins()
    installed = {canonicalize_name(d.metadata["Name"]): d.version
                 for d in metadata.distributions()}
    drift = {name: (version, installed[name]) for name, version in pinned.items()
             if name in installed and installed[name] != version}
    assert not drift, ("installed versions differ from constraints.txt (pinned, installed): "
                       f"{drift}; run `make setup`")
    missing = [r.name for r in project_requirements()
               if canonicalize_name(r.name) not in installed]
    assert not missing, f"not installed: {missing}"


def test_the_conda_environment_pins_the_same_pytorch() -> None:
    env = yaml.safe_load((ROOT / "envs" / "labaug.yaml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda_pins = {canonicalize_name(r.name): str(r.specifier)
                  for r in map(Requirement, pip_section)}
    pinned = pins()
    for name in ("torch", "torchvision"):
        assert conda_pins[name] == f"=={pinned[name]}", (
            f"envs/labaug.yaml pins {name}{conda_pins[name]}, constraints.txt {pinned[name]}")


def test_the_makefile_installs_through_the_constraints_only() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "-c constraints.txt" in makefile
    assert not re.search(r"\btorch(vision)?==", makefile), (
        "the Makefile pins torch itself; the one pin lives in constraints.txt")


def test_the_debian_step_goes_on_without_apt_get(tmp_path: Path) -> None:
    # `make quick` on macOS or another Linux: no dpkg, no apt-get. The step names what it
    # leaves out and succeeds; the workflow then downloads Fashion-MNIST.
    make = shutil.which("make")
    assert make is not None
    proc = subprocess.run([make, "-s", "-C", str(ROOT), "_apt",
                           "APT_PACKAGES=dataset-fashion-mnist munge"],
                          env={"PATH": str(tmp_path)}, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("no apt-get (not Debian or Ubuntu): not installing "
                                  "dataset-fashion-mnist munge."), proc.stdout
    assert "downloaded by the workflow" in proc.stdout


def test_make_alone_lists_the_targets_the_readme_names() -> None:
    make = shutil.which("make")
    assert make is not None
    proc = subprocess.run([make, "-s", "-C", str(ROOT)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    listed = [line.split()[1] for line in proc.stdout.splitlines()]
    assert listed == ["help", "setup", "lock", "quick", "diagnosis", "full", "docs", "lint", "test",
                      "clean"], proc.stdout
