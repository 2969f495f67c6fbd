"""The docs cannot drift: every relative link and image in README.md and docs/ points at a file,
every `make` target they name exists (`make -n`), every Snakemake command they show builds a DAG
(`snakemake -n`), and every config key they name is in config.yaml (or, for keys a user adds,
in the config schema). Also: the generated files say what made them, and no page keeps an
unfilled placeholder."""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from labaug.schema import load_schema

from .cluster.smoke import SNAKEMAKE
from .conftest import REPO, load_yaml

PAGES = sorted([REPO / "README.md", *(REPO / "docs").rglob("*.md")])
GENERATED = ("docs/results/quick.md", "docs/results/diagnosis.md", "docs/results/benchmarks.md")

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
MAKE = re.compile(r"(?:^|`|\$ )make ([a-z][a-z-]*)", re.M)
KEY = re.compile(r"`([a-z][a-z0-9_]*(?:\.(?:[a-z0-9_]+|<[a-z_]+>))+)`")
FILE_TYPES = {"pdf", "png", "nc", "md", "npz", "yaml", "py", "json", "log", "txt", "tsv", "pt"}
TARGET = re.compile(r"^[\w./-]+\.(?:pdf|png|nc|md|npz)$")
# Options whose value(s) are not targets.
VALUED = {"--cores", "-c", "--resources", "--report", "--workflow-profile", "--config",
          "--slurm-status-command", "--jobs", "-j", "--retries", "--executor", "-e"}


def relative(page: Path) -> str:
    """The page's path in the repository."""
    return str(page.relative_to(REPO))


def code_blocks(text: str) -> Iterator[str]:
    """The lines of the fenced code blocks of a page, continuation lines joined."""
    for block in FENCE.findall(text):
        yield from block.replace("\\\n", " ").splitlines()[1:-1]


def test_the_pages_exist_and_the_readme_is_a_front_page() -> None:
    names = {relative(p) for p in PAGES}
    for page in ("docs/running.md", "docs/reading-results.md", "docs/extending.md",
                 "docs/datasets.md", "docs/architecture.md", "docs/benchmarks.md",
                 "docs/protocol.md", *GENERATED):
        assert page in names, page
    assert len((REPO / "README.md").read_text().splitlines()) <= 300


@pytest.mark.parametrize("page", PAGES, ids=relative)
def test_every_relative_link_and_image_points_at_a_file(page: Path) -> None:
    text = FENCE.sub("", page.read_text())
    broken = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        if not path.exists():
            broken.append(target)
    assert not broken, f"{relative(page)}: links to nothing: {broken}"


def test_the_gallery_images_are_small_pngs() -> None:
    images = [t for t in LINK.findall((REPO / "README.md").read_text()) if t.endswith(".png")]
    assert images, "the README shows no figure"
    for image in images:
        data = (REPO / image).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", image
        assert len(data) <= 250_000, f"{image}: {len(data)} bytes"


def make_targets() -> dict[str, list[str]]:
    """{make target named: pages naming it}."""
    found: dict[str, list[str]] = {}
    for page in PAGES:
        for target in MAKE.findall(page.read_text()):
            found.setdefault(target, []).append(relative(page))
    return found


def test_every_make_target_named_exists() -> None:
    targets = make_targets()
    assert {"quick", "test", "docs"} <= set(targets), sorted(targets)
    missing = {}
    for target, pages in sorted(targets.items()):
        proc = subprocess.run(["make", "-n", "-C", str(REPO), target], capture_output=True,
                              text=True)
        if proc.returncode != 0:
            missing[target] = (pages, proc.stderr.strip()[-300:])
    assert not missing, missing


Command = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]


def parse_snakemake(words: list[str]) -> Command:
    """(targets, config files, --config values) of one snakemake command line."""
    targets: list[str] = []
    configs: list[str] = []
    overrides: list[str] = []
    option = ""
    for word in words[1:]:
        if word.startswith("-"):
            option = word
        elif option == "--configfile" and word.endswith((".yaml", ".yml")):
            configs.append(word)
        elif option == "--config" and "=" in word:
            overrides.append(word)
        elif option in VALUED:
            option = ""
        elif TARGET.match(word):
            targets.append(word)
    return tuple(targets), tuple(configs), tuple(overrides)


def snakemake_commands() -> dict[Command, list[str]]:
    """{(targets, config files, --config values): pages} of the snakemake commands in the
    pages' code blocks that name targets and whose config files are in the repository."""
    found: dict[Command, list[str]] = {}
    for page in PAGES:
        for line in code_blocks(page.read_text()):
            if "snakemake" not in line:
                continue
            tokens = shlex.split(line, comments=True)
            starts = [0, *(i + 1 for i, t in enumerate(tokens) if t in ("&&", ";", "||"))]
            for start, end in zip(starts, [*starts[1:], len(tokens) + 1], strict=True):
                words = tokens[start:end - 1]
                if words[:1] == ["time"]:
                    words = words[1:]
                if not words or Path(words[0]).name != "snakemake":
                    continue
                command = parse_snakemake(words)
                if command[0] and all((REPO / c).is_file() for c in command[1]):
                    found.setdefault(command, []).append(relative(page))
    return found


def test_every_snakemake_target_shown_builds_a_dag() -> None:
    commands = snakemake_commands()
    assert commands, "no snakemake command with a target was found"
    # One dry run per configuration, with every target shown for it (each run starts Snakemake).
    by_config: dict[tuple[tuple[str, ...], tuple[str, ...]], dict[str, list[str]]] = {}
    for (targets, configs, overrides), pages in commands.items():
        for target in targets:
            by_config.setdefault((configs, overrides), {}).setdefault(target, []).extend(pages)
    failed = {}
    for (configs, overrides), targets in sorted(by_config.items()):
        args = [SNAKEMAKE, "-n", "--quiet", "--cores", "1", *sorted(targets)]
        if overrides:
            args += ["--config", *overrides]
        if configs:
            args += ["--configfile", *configs]
        proc = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            failed[" ".join(sorted(targets))] = (sorted({p for ps in targets.values()
                                                         for p in ps}),
                                                 (proc.stdout + proc.stderr)[-600:])
    assert not failed, failed


def full_schema() -> dict[str, Any]:
    """The config schema as the workflow validates with it (methods and datasets filled in)."""
    return load_schema(REPO / "workflow" / "schemas" / "config.schema.yaml")


def in_schema(schema: Mapping[str, Any], node: Mapping[str, Any], parts: list[str]) -> bool:
    """Whether the dotted key ``parts`` is allowed under the schema ``node``."""
    if not parts:
        return True
    if "$ref" in node:
        name = str(node["$ref"]).rsplit("/", 1)[-1]
        return in_schema(schema, schema["$defs"][name], parts)
    head, rest = parts[0], parts[1:]
    properties = node.get("properties", {})
    if head in properties:
        return in_schema(schema, properties[head], rest)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict) and (head.startswith("<") or not properties):
        return in_schema(schema, extra, rest)
    return any(re.match(pattern, head) for pattern in node.get("patternProperties", {}))


def in_config(config: Any, parts: list[str]) -> bool:
    """Whether the dotted key ``parts`` is in config.yaml (``<name>`` matches any key)."""
    for part in parts:
        if not isinstance(config, dict):
            return False
        if part.startswith("<"):
            config = next(iter(config.values()), None) if config else None
            if config is None:
                return False
        elif part in config:
            config = config[part]
        else:
            return False
    return True


def test_every_config_key_named_is_in_the_config() -> None:
    config = load_yaml(REPO / "config.yaml")
    schema = full_schema()
    named: dict[str, list[str]] = {}
    for page in PAGES:
        for key in KEY.findall(page.read_text()):
            if key.split(".")[0] in config and key.rsplit(".", 1)[-1] not in FILE_TYPES:
                named.setdefault(key, []).append(relative(page))
    assert len(named) >= 10, sorted(named)
    unknown = {key: pages for key, pages in named.items()
               if not in_config(config, key.split("."))
               and not in_schema(schema, schema, key.split("."))}
    assert not unknown, unknown


PLACEHOLDER = re.compile(r"\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b|\b(?:TODO|TBD|FIXME)\b")


def placeholders(text: str) -> list[str]:
    """Unfilled placeholders (SOME_NAME, TODO) in a page's prose: code and comments excepted."""
    prose = re.sub(r"<!--.*?-->", "", re.sub(r"`[^`\n]*`", "", FENCE.sub("", text)), flags=re.S)
    return PLACEHOLDER.findall(prose)


def test_the_drift_checks_can_fail(tmp_path: Path) -> None:
    config = load_yaml(REPO / "config.yaml")
    schema = full_schema()
    assert not in_config(config, ["resnet", "no_such_key"])
    assert not in_schema(schema, schema, ["resnet", "no_such_key"])
    assert in_schema(schema, schema, ["datasets", "<name>", "format"])
    assert not in_schema(schema, schema, ["datasets", "<name>", "no_such_key"])
    assert in_config(config, ["image", "pairs", "fmnist"])
    assert parse_snakemake(shlex.split(
        "snakemake runs/a/figures/fig1.pdf --cores 2 --config output_root=runs/a "
        "--configfile presets/quick.yaml mine.yaml")) == (
        ("runs/a/figures/fig1.pdf",), ("presets/quick.yaml", "mine.yaml"),
        ("output_root=runs/a",))
    proc = subprocess.run(["make", "-n", "-C", str(REPO), "no-such-target"],
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert placeholders("took **PYTEST_TIME** (TODO) but `CUDA_HOME` is code") == [
        "PYTEST_TIME", "TODO"]


@pytest.mark.parametrize("page", PAGES, ids=relative)
def test_no_page_keeps_an_unfilled_placeholder(page: Path) -> None:
    found = placeholders(page.read_text())
    assert not found, f"{relative(page)}: unfilled placeholders {found}"


@pytest.mark.parametrize("page", GENERATED)
def test_generated_pages_say_what_made_them(page: str) -> None:
    first = (REPO / page).read_text().splitlines()[0]
    assert first.startswith("<!-- Generated by `make docs`"), first
    assert re.search(r"commit \w+", first), first


def test_replacing_a_generated_block_keeps_the_rest_and_names_a_missing_one() -> None:
    from labaug.docs import replace_block

    text = "a\n<!-- generated: one -->\nold\n<!-- end generated -->\nb\n"
    new = replace_block(text, "one", ["| x |"], "note")
    assert new == "a\n<!-- generated: one -->\n<!-- note -->\n| x |\n<!-- end generated -->\nb\n"
    assert replace_block(new, "one", ["| x |"], "note") == new
    with pytest.raises(ValueError, match="no block '<!-- generated: two -->'"):
        replace_block(text, "two", [], "note")


@pytest.mark.parametrize(("wd_following", "wd_error", "holds"),
                         [(0.1, 0.3, True), (0.1, 0.9, False), (0.7, 0.3, False)])
def test_weight_decay_avoids_the_channels_only_while_it_learns_the_images(
        wd_following: float, wd_error: float, holds: bool) -> None:
    import numpy as np
    import xarray as xr

    from labaug.docs import study_cell

    methods = ["weight_decay", "label_smoothing"]
    shape = (1, 2, 1, 2, 3)    # model, augmentation, grid, seed, epoch
    following = np.full(shape, 0.95)
    error = np.full(shape, 0.6)
    following[:, 0] = wd_following
    error[:, 0] = wd_error
    dims = ("model", "augmentation", "grid", "seed", "epoch")
    ds = xr.Dataset(
        {"channel_following": (dims, following), "test_error": (dims, error)},
        coords={"model": ["mlp"], "augmentation": methods, "grid": [0], "seed": [0, 1],
                "epoch": [1, 2, 3],
                "hp_value": (("augmentation", "grid"), np.array([[0.05], [0.1]]))})
    wd, la, verdict = study_cell(ds, "mlp")
    assert verdict is holds
    assert wd.startswith(f"{wd_following:.2f} (lambda 0.05; test error {wd_error:.2f})"), wd
    assert la == "Label smoothing 0.95"
    assert study_cell(ds, "resnet18") == ("not run", "not run", None)
