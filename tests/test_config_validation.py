"""Bad configs are rejected before any job runs, with a message naming the offending key."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from labaug import augment, datasets, models
from labaug.schema import ConfigError, config_errors, load_schema, validate_config
from tests.conftest import PRESETS, REPO, load_yaml, merged_config

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
SCHEMA = load_schema(REPO / "workflow" / "schemas" / "config.schema.yaml")

METHODS = augment.names()
FIRST = METHODS[0]
# The methods with a grid to sweep (ERM has no hyperparameter, so no grid and no ResNet value).
SWEPT = [m for m in METHODS if augment.swept(m)]
CLASS_CHANNEL_METHODS = [m for m in augment.for_experiment(METHODS, "class_channels")
                         if augment.get(m).has_hp]


def hp_range(method: str) -> str:
    """The interval a method's hyperparameter may take: [0, inf), or [0, max) when bounded."""
    top = augment.get(method).hp_maximum
    return "[0, inf)" if top is None else f"[0, {top:g})"


# (name, config layered on top of config.yaml, key path the message must name,
#  a fragment of the allowed values the message must state)
PER_METHOD: list[tuple[str, dict[str, Any], str, str]] = [
    *[(f"negative_grid_low-{m}", {"grids": {m: {"low": -0.01}}}, f"grids.{m}.low", hp_range(m))
      for m in SWEPT],
    *[(f"negative_resnet_hp-{m}", {"resnet": {"hp": {m: -0.5}}}, f"resnet.hp.{m}", hp_range(m))
      for m in CLASS_CHANNEL_METHODS],
    *[(f"negative_resnet_hp_in_a_list-{m}", {"resnet": {"hp": {m: [0.01, -0.5]}}},
       f"resnet.hp.{m}[1]", hp_range(m)) for m in CLASS_CHANNEL_METHODS],
    *[(f"grid_high_at_maximum-{m}", {"grids": {m: {"high": augment.get(m).hp_maximum}}},
       f"grids.{m}.high", hp_range(m))
      for m in SWEPT if augment.get(m).hp_maximum is not None],
    *[(f"resnet_hp_above_maximum-{m}",
       {"resnet": {"hp": {m: 1.5 * float(augment.get(m).hp_maximum or 0)}}},
       f"resnet.hp.{m}", hp_range(m))
      for m in CLASS_CHANNEL_METHODS if augment.get(m).hp_maximum is not None],
    *[(f"grid_size_one_drops_high-{m}", {"grids": {m: {"low": 0.0, "high": 0.05, "size": 1}}},
       f"grids.{m}", "set low = high") for m in SWEPT],
]
BAD_CONFIGS: list[tuple[str, dict[str, Any], str, str]] = [
    *PER_METHOD,
    ("unknown_dataset", {"image_datasets": ["cifar10", "svhn"]},
     "image_datasets[1]", "cifar10, cifar100, fmnist"),
    ("unknown_resnet_dataset", {"resnet": {"datasets": ["imagenet"]}},
     "resnet.datasets[0]", "cifar10, cifar100, fmnist"),
    ("unknown_method", {"methods": [FIRST, "dropout"]},
     "methods[1]", ", ".join(METHODS)),
    ("unknown_resnet_method", {"resnet": {"hp": {"dropout": 0.1}}},
     "resnet.hp.dropout", "unknown key"),
    ("unknown_grid", {"grids": {"dropout": {"low": 0.0, "high": 0.1, "size": 2}}},
     "grids.dropout", "unknown key"),
    ("empty_seed_list", {"seeds": []}, "seeds", "at least 1 item"),
    ("pair_class_out_of_range", {"image": {"pairs": {"fmnist": [0, 10]}}},
     "image.pairs.fmnist[1]", "[0, 9]"),
    ("pair_repeats_a_class", {"image": {"pairs": {"cifar100": [7, 7]}}},
     "image.pairs.cifar100", "must not repeat an item"),
    ("pair_of_three", {"image": {"pairs": {"cifar10": [0, 1, 2]}}},
     "image.pairs.cifar10", "at most 2 items"),
    ("unknown_model", {"resnet": {"models": ["resnet18", "vit"]}}, "resnet.models[1]",
     "mlp, resnet18, resnet18_gn, resnet18_nn"),
    ("old_single_model_key", {"resnet": {"model": "mlp"}}, "resnet.model",
     "did you mean 'models'"),
    ("no_model", {"resnet": {"models": []}}, "resnet.models", "at least 1 item"),
    ("empty_resnet_hp_list", {"resnet": {"hp": {"mixup": []}}}, "resnet.hp.mixup",
     "at least 1 item"),
    ("erm_has_no_grid", {"grids": {"erm": {"low": 0.0, "high": 0.1, "size": 2}}},
     "grids.erm", "unknown key"),
    ("zero_grid_size", {"grids": {FIRST: {"size": 0}}}, f"grids.{FIRST}.size", "[1, inf)"),
    ("non_numeric_learning_rate", {"optim": {"lr": "fast"}}, "optim.lr", "must be a number"),
    ("unknown_device", {"resnet": {"device": "tpu"}}, "resnet.device", "auto, cpu, cuda"),
    ("unknown_linear_device", {"linear": {"device": "auto"}}, "linear.device", "cpu, cuda"),
    ("old_top_level_device", {"device": "cuda"}, "device", "unknown key"),
    ("typo_linear_key", {"linear": {"devices": "cpu"}}, "linear.devices",
     "did you mean 'device'"),
    ("unknown_precision", {"resnet": {"precision": "fp8"}}, "resnet.precision",
     "auto, bf16, fp16, fp32"),
    ("compile_not_boolean", {"resnet": {"compile": "yes"}}, "resnet.compile", "true or false"),
    ("zero_runs_per_gpu", {"resnet": {"runs_per_gpu": 0}}, "resnet.runs_per_gpu", "[1, 64]"),
    ("fractional_runs_per_gpu", {"resnet": {"runs_per_gpu": 1.5}}, "resnet.runs_per_gpu",
     "must be an integer"),
    ("negative_checkpoint_minutes", {"resnet": {"checkpoint_minutes": -1}},
     "resnet.checkpoint_minutes", "[0, 1440]"),
    ("typo_top_level_key", {"seed": [0, 1]}, "seed", "did you mean 'seeds'"),
    ("typo_nested_key", {"optim": {"epoch": 3}}, "optim.epoch", "did you mean 'epochs'"),
    ("grid_low_above_high", {"grids": {FIRST: {"low": 0.2, "high": 0.1}}},
     f"grids.{FIRST}", "low <= high"),
    # Values that cannot work: a ResNet batch step needs 2 examples (BatchNorm), an evaluation 1.
    ("train_subset_one", {"resnet": {"train_subset": 1}}, "resnet.train_subset", "[2, inf)"),
    ("test_subset_zero", {"resnet": {"test_subset": 0}}, "resnet.test_subset", "[1, inf)"),
    ("resnet_batch_one_from_optim", {"optim": {"batch_size": 1}},
     "resnet.batch_size = null uses optim.batch_size = 1", "resnet.batch_size >= 2"),
    ("output_root_absolute", {"output_root": "/tmp/out"}, "output_root", "must match"),
    ("output_root_parent", {"output_root": "../elsewhere"}, "output_root", "must match"),
]
MISSING_KEY = ("low_noise", "low_noise", "required key missing")
# The cases that also go through `snakemake -n` (about 4 s each); the rest differ only in the key.
THROUGH_SNAKEMAKE = [c for c in BAD_CONFIGS if c[0] in {
    f"negative_grid_low-{FIRST}", f"grid_size_one_drops_high-{FIRST}",
    *[c[0] for c in PER_METHOD if c[0].startswith("grid_high_at_maximum")][:1],
    *[c[0] for c in PER_METHOD if c[0].startswith("negative_resnet_hp")][:1],
    "unknown_dataset", "unknown_method", "empty_seed_list", "zero_grid_size",
    "non_numeric_learning_rate", "unknown_device", "typo_nested_key"}]


def _merge(base: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _object_nodes(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        if node.get("type") == "object":
            yield path, node
        for key, value in node.items():
            yield from _object_nodes(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _object_nodes(value, f"{path}/{i}")


# --- the schema itself ------------------------------------------------------------------------


@pytest.mark.parametrize("presets", [(), *((name,) for name in PRESETS)],
                         ids=["default", *PRESETS])
def test_shipped_configs_are_valid(presets: tuple[str, ...]) -> None:
    assert config_errors(merged_config(*presets), SCHEMA) == []


def test_every_object_in_the_schema_is_closed_and_every_key_typed() -> None:
    nodes = list(_object_nodes(SCHEMA))
    assert len(nodes) > 10
    for path, node in nodes:
        assert "additionalProperties" in node, f"{path} accepts unknown keys"
        for key, prop in node.get("properties", {}).items():
            assert "type" in prop or "$ref" in prop or "enum" in prop, f"{path}/{key} untyped"


def test_every_key_of_config_yaml_is_required() -> None:
    config = load_yaml(REPO / "config.yaml")
    assert set(SCHEMA["required"]) == set(config)
    for section in ("optim", "synthetic", "theory", "image", "data_sources", "linear", "resnet",
                    "grids"):
        required = set(SCHEMA["properties"][section]["required"])
        assert required == set(config[section]), section
    assert set(SCHEMA["properties"]["resnet"]["properties"]["hp"]["required"]) == set(
        config["resnet"]["hp"])


def test_the_schema_lists_exactly_the_registered_methods() -> None:
    # The YAML file leaves the method list open; load_schema fills it from the registry.
    raw = load_yaml(REPO / "workflow" / "schemas" / "config.schema.yaml")
    assert "enum" not in raw["$defs"]["method"]
    assert SCHEMA["$defs"]["method"]["enum"] == list(augment.names())
    grids = SCHEMA["properties"]["grids"]
    assert list(grids["properties"]) == SWEPT
    assert grids["required"] == SWEPT
    hp = SCHEMA["properties"]["resnet"]["properties"]["hp"]
    assert hp["required"] == CLASS_CHANNEL_METHODS
    assert list(hp["properties"]) == CLASS_CHANNEL_METHODS
    # config.yaml runs every registered method with a hyperparameter (the paper's figures) and
    # has a grid and ResNet value for each; ERM, the class-channel baseline, runs in the
    # diagnosis presets.
    config = load_yaml(REPO / "config.yaml")
    assert sorted(config["methods"]) == sorted(m for m in augment.names()
                                               if augment.get(m).has_hp)
    assert "erm" in load_yaml(REPO / "presets" / "diagnosis.yaml")["methods"]
    assert SCHEMA["$defs"]["model"]["enum"] == list(models.names())


BUILTIN = datasets.builtin()


def test_the_schema_lists_exactly_the_registered_datasets() -> None:
    # The YAML file names no dataset; load_schema fills them in from labaug.datasets, each
    # class pair bounded by the dataset's number of classes (read from the registry).
    text = (REPO / "workflow" / "schemas" / "config.schema.yaml").read_text()
    assert not any(name in text for name in BUILTIN)
    names = list(BUILTIN)
    assert SCHEMA["$defs"]["dataset"]["enum"] == names
    pairs = SCHEMA["properties"]["image"]["properties"]["pairs"]
    assert pairs["required"] == names
    assert {n: p["items"]["maximum"] for n, p in pairs["properties"].items()} == {
        n: int(spec.num_classes or 0) - 1 for n, spec in BUILTIN.items()}
    assert SCHEMA["properties"]["data_sources"]["required"] == names
    assert list(SCHEMA["properties"]["data_checksums"]["properties"]) == names
    assert "required" not in SCHEMA["properties"]["data_checksums"]
    # A config's own datasets are names too (their pairs optional, their sources in the entry).
    own = load_schema(REPO / "workflow" / "schemas" / "config.schema.yaml",
                      {"datasets": {"mine": {"format": "npz", "path": "x.npz"}}})
    assert own["$defs"]["dataset"]["enum"] == [*names, "mine"]


@pytest.mark.parametrize("dataset", list(BUILTIN))
def test_every_dataset_needs_its_pair_and_source(dataset: str) -> None:
    for section, keys in (("image.pairs", ("image", "pairs")), ("data_sources", ("data_sources",))):
        config = merged_config()
        parent = config
        for key in keys:
            parent = parent[key]
        del parent[dataset]
        problems = config_errors(config, SCHEMA)
        assert f"{section}.{dataset}: required key missing ({dataset})" in problems, problems
    config = merged_config()
    top = int(BUILTIN[dataset].num_classes or 0) - 1
    config["image"]["pairs"][dataset] = [0, top + 1]
    assert config_errors(config, SCHEMA) == [
        f"image.pairs.{dataset}[1] = {top + 1} is out of range; allowed: [0, {top}]"]
    config["image"]["pairs"][dataset] = [top, 0]
    assert config_errors(config, SCHEMA) == []


@pytest.mark.parametrize("method", SWEPT)
def test_every_method_needs_its_grid_and_resnet_value(method: str) -> None:
    config = merged_config()
    del config["grids"][method]
    problems = config_errors(config, SCHEMA)
    assert f"grids.{method}: required key missing ({method})" in problems, problems
    if method in CLASS_CHANNEL_METHODS:
        config = merged_config()
        del config["resnet"]["hp"][method]
        problems = config_errors(config, SCHEMA)
        assert f"resnet.hp.{method}: required key missing ({method})" in problems, problems


@pytest.mark.parametrize("method", SWEPT)
def test_grid_of_one_value_is_accepted_when_low_equals_high(method: str) -> None:
    value = 0.05
    config = _merge(merged_config(), {"grids": {method: {"low": value, "high": value,
                                                         "size": 1}}})
    assert config_errors(config, SCHEMA) == []
    size_one = _merge(merged_config(), {"grids": {method: {"low": 0.0, "high": value,
                                                           "size": 1}}})
    problems = config_errors(size_one, SCHEMA)
    assert len(problems) == 1 and problems[0].startswith(f"grids.{method}: size = 1"), problems
    assert "0.05" in problems[0]


def test_unknown_method_lists_every_registered_one() -> None:
    config = _merge(merged_config(), {"methods": ["dropout"]})
    with pytest.raises(ConfigError) as info:
        validate_config(config, SCHEMA)
    message = str(info.value)
    assert "- methods[0] = 'dropout' is not allowed; choose from: " in message, message
    assert all(m in message for m in augment.names()), message


# --- the messages (fast, no Snakemake) --------------------------------------------------------


@pytest.mark.parametrize(("name", "override", "key", "allowed"), BAD_CONFIGS,
                         ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_is_named(name: str, override: dict[str, Any], key: str, allowed: str) -> None:
    config = _merge(merged_config(), override)
    with pytest.raises(ConfigError) as info:
        validate_config(config, SCHEMA)
    message = str(info.value)
    assert f"- {key}" in message, message
    assert allowed in message, message


def test_missing_key_is_named() -> None:
    config = merged_config()
    del config["low_noise"]
    del config["optim"]["eps"]
    problems = config_errors(config, SCHEMA)
    assert "low_noise: required key missing (low_noise)" in problems
    assert "optim.eps: required key missing (eps)" in problems


def test_every_problem_is_reported_at_once() -> None:
    config = _merge(merged_config(), {"linear": {"device": "tpu"}, "seeds": [],
                                      "optim": {"lr": -1}})
    problems = config_errors(config, SCHEMA)
    assert len(problems) == 3
    assert [p.split(" ")[0] for p in problems] == ["linear.device", "optim.lr", "seeds"]


def test_nan_is_rejected() -> None:
    config = _merge(merged_config(), {"low_noise": float("nan")})
    assert config_errors(config, SCHEMA) == ["low_noise = nan must be a finite number"]


# --- through Snakemake: `snakemake -n` stops before any job ------------------------------------


def _dry_run(workdir: Path, *args: str, snakefile: Path = REPO / "Snakefile"
             ) -> tuple[subprocess.CompletedProcess[str], float]:
    cmd = [SNAKEMAKE, "-n", "-s", str(snakefile), "-d", str(workdir), *args]
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return proc, time.monotonic() - start


def _assert_rejected(proc: subprocess.CompletedProcess[str], seconds: float, workdir: Path,
                     key: str, allowed: str) -> None:
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "ConfigError" in out, out
    assert f"- {key}" in out, out
    assert allowed in out, out
    assert "Job stats" not in out, out
    assert seconds < 60, f"took {seconds:.1f} s"
    made = {p.name for p in workdir.iterdir()} - {".snakemake", "bad.yaml", "config.yaml",
                                                  "Snakefile", "workflow"}
    assert not made, f"files appeared before validation: {made}"


@pytest.mark.slow
@pytest.mark.parametrize(("name", "override", "key", "allowed"), THROUGH_SNAKEMAKE,
                         ids=[c[0] for c in THROUGH_SNAKEMAKE])
def test_snakemake_rejects_bad_config(tmp_path: Path, name: str, override: dict[str, Any],
                                      key: str, allowed: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(override))
    proc, seconds = _dry_run(tmp_path, "--configfile", str(bad))
    _assert_rejected(proc, seconds, tmp_path, key, allowed)


@pytest.mark.slow
def test_snakemake_rejects_missing_required_key(tmp_path: Path) -> None:
    # Snakemake merges --configfile into config.yaml, so a key can only go missing from
    # config.yaml itself: use a copy of the workflow whose config.yaml lacks one.
    shutil.copy(REPO / "Snakefile", tmp_path / "Snakefile")
    shutil.copytree(REPO / "workflow", tmp_path / "workflow")
    config = load_yaml(REPO / "config.yaml")
    removed, key, allowed = MISSING_KEY
    del config[removed]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    proc, seconds = _dry_run(tmp_path, "--workflow-profile", "none",
                             snakefile=tmp_path / "Snakefile")
    _assert_rejected(proc, seconds, tmp_path, key, allowed)
