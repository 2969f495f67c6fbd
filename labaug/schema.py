"""Config validation against the JSON schema, with messages that name the offending key."""

from __future__ import annotations

import copy
import difflib
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA_PATH = Path("workflow") / "schemas" / "config.schema.yaml"

_BOUNDS = ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum")
_TYPE_NAMES = {
    "number": "a number",
    "integer": "an integer",
    "string": "a string",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping",
    "null": "null",
}


class ConfigError(ValueError):
    """The configuration violates the schema; the message lists every offending key."""


def load_schema(path: str | os.PathLike[str],
                config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Read a YAML (or JSON) schema file; fill in the methods, models and datasets from their
    registries (`with_methods`, `with_datasets`; ``config``'s own datasets too)."""
    with open(path) as fh:
        schema: dict[str, Any] = yaml.safe_load(fh)
    return with_datasets(with_methods(schema), config)


def with_methods(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The schema with the method and model enums, grid keys and ResNet values of every
    registered method and model.

    The method list lives in one place, the `labaug.augment` registry, and the model list in
    `labaug.models`; each method's bound on its hyperparameter (e.g. label smoothing a < 1)
    becomes the bound of its grid and values. A method's ResNet value is a number or a list of
    numbers (one run each); a method without a hyperparameter (ERM) has neither grid nor value.
    """
    from labaug import augment, models

    out: dict[str, Any] = copy.deepcopy(dict(schema))
    methods = augment.registry()
    out["$defs"]["method"]["enum"] = list(methods)
    out["$defs"]["model"]["enum"] = list(models.names())
    grid = out["$defs"]["grid"]
    grids: dict[str, Any] = {}
    values: dict[str, Any] = {}
    for name, method in methods.items():
        if not method.has_hp:
            continue
        bound = ({} if method.hp_maximum is None
                 else {"exclusiveMaximum": method.hp_maximum})
        words = f"{method.hp_words} {method.hp_symbol.strip(chr(92))}"
        if augment.swept(name):
            grids[name] = {**grid, "description": f"grid of {words}",
                           "properties": {k: {**v, **bound} if k != "size" else v
                                          for k, v in grid["properties"].items()}}
        number = {"type": "number", "minimum": 0, **bound}
        # Numeric keywords apply to a number, array keywords to a list: one schema for both.
        values[name] = {**number, "type": ["number", "array"], "minItems": 1,
                        "uniqueItems": True, "items": number,
                        "description": f"{words} in the ResNet runs: one value, or a list of "
                                       "values (one run each)"}
    out["properties"]["grids"].update(properties=grids, required=list(grids))
    class_channels = [n for n, m in methods.items()
                      if "class_channels" in m.experiments and n in values]
    out["properties"]["resnet"]["properties"]["hp"].update(
        properties={n: values[n] for n in class_channels}, required=class_channels)
    return out


def with_datasets(schema: Mapping[str, Any],
                  config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The schema with the dataset names, class-pair, source and checksum keys of every dataset.

    The built-in datasets come from `labaug.datasets`; each one's number of classes bounds the
    class indices of its pair, and its pair and source directory are required (config.yaml
    holds them). A config's own datasets (``datasets.<name>``) are valid names too; their pair
    is optional (the first two classes) and checked against their real classes when the
    workflow starts (`labaug.datasets.user.check_datasets`).
    """
    from labaug import datasets

    out: dict[str, Any] = copy.deepcopy(dict(schema))
    builtin = datasets.builtin()
    out["$defs"]["dataset"]["enum"] = list(datasets.names(
        config if isinstance((config or {}).get("datasets"), Mapping) else None))
    pair = out["$defs"]["pair"]
    pairs = {
        name: {**pair, "items": {**pair["items"], "maximum": int(spec.num_classes or 1) - 1},
               "description": f"two distinct class indices of {spec.title} "
                              f"(0 to {int(spec.num_classes or 1) - 1})"}
        for name, spec in builtin.items()
    }
    out["properties"]["image"]["properties"]["pairs"].update(
        properties=pairs, required=list(builtin), additionalProperties={"$ref": "#/$defs/pair"})
    out["properties"]["data_sources"].update(
        properties={n: {"$ref": "#/$defs/source"} for n in builtin}, required=list(builtin))
    out["properties"]["data_checksums"].update(
        properties={n: {"$ref": "#/$defs/checksums"} for n in builtin})
    return out


def key_path(path: Iterable[Any]) -> str:
    """A config key path as written in YAML terms: ``grids.mixup.low``, ``seeds[0]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _fmt(value: Any) -> str:
    """A config value as the user wrote it in YAML."""
    if isinstance(value, str):
        return repr(value)
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000)
    return text.strip().removesuffix("...").strip()


def allowed_range(schema: Mapping[str, Any]) -> str | None:
    """The interval a numeric schema allows, like ``[0, 1)``; None when it has no bounds."""
    if not any(k in schema for k in _BOUNDS):
        return None
    if "exclusiveMinimum" in schema:
        low = f"({_num(schema['exclusiveMinimum'])}"
    elif "minimum" in schema:
        low = f"[{_num(schema['minimum'])}"
    else:
        low = "(-inf"
    if "exclusiveMaximum" in schema:
        high = f"{_num(schema['exclusiveMaximum'])})"
    elif "maximum" in schema:
        high = f"{_num(schema['maximum'])}]"
    else:
        high = "inf)"
    return f"{low}, {high}"


def _num(x: float) -> str:
    return str(int(x)) if isinstance(x, int | float) and float(x).is_integer() else str(x)


def _types(schema: Mapping[str, Any]) -> list[str]:
    t = schema.get("type", [])
    return [t] if isinstance(t, str) else list(t)


def _describe(error: jsonschema.ValidationError) -> str:
    """One line for one schema violation, naming the key and what is allowed."""
    path = list(error.absolute_path)
    key = key_path(path)
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    kind = error.validator
    value: Any = error.instance
    expected: Any = error.validator_value
    if kind in _BOUNDS:
        rng = allowed_range(schema)
        return f"{key} = {_fmt(value)} is out of range; allowed: {rng}"
    if kind == "type":
        names = " or ".join(_TYPE_NAMES.get(t, t) for t in _types(schema))
        rng = allowed_range(schema)
        extra = f" in {rng}" if rng else ""
        return f"{key} = {_fmt(value)} must be {names}{extra}"
    if kind == "enum":
        options = ", ".join(str(o) for o in schema.get("enum", []))
        return f"{key} = {_fmt(value)} is not allowed; choose from: {options}"
    if kind == "required":
        missing = [k for k in expected if k not in value]
        where = key_path([*path, missing[0]]) if len(missing) == 1 else key
        names = ", ".join(missing)
        return f"{where}: required key missing ({names})"
    if kind == "additionalProperties":
        known = sorted(schema.get("properties", {}))
        lines = []
        for extra in sorted(k for k in value if k not in known):
            close = difflib.get_close_matches(str(extra), known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            lines.append(f"{key_path([*path, extra])}: unknown key{hint} "
                         f"(allowed: {', '.join(known)})")
        if lines:
            return "\n".join(lines)
    if kind == "minItems":
        n = expected
        return f"{key} = {_fmt(value)} must list at least {n} item{'s' if n != 1 else ''}"
    if kind == "maxItems":
        return f"{key} = {_fmt(value)} must list at most {expected} items"
    if kind == "uniqueItems":
        return f"{key} = {_fmt(value)} must not repeat an item"
    if kind == "pattern":
        return f"{key} = {_fmt(value)} must match {expected}"
    if kind == "minLength":
        return f"{key} = {_fmt(value)} must not be empty"
    return f"{key}: {error.message}"


def _ordered(grid: Mapping[str, Any], low: str, high: str) -> bool:
    a, b = grid.get(low), grid.get(high)
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (a, b))
    return not numeric or float(a) <= float(b)  # type: ignore[arg-type]


def _relations(config: Mapping[str, Any]) -> list[str]:
    """Constraints between keys, which JSON schema cannot state."""
    problems = []
    grids = config.get("grids")
    if isinstance(grids, Mapping):
        for name, grid in grids.items():
            if isinstance(grid, Mapping) and not _ordered(grid, "low", "high"):
                problems.append(f"grids.{name}: low = {_fmt(grid['low'])} exceeds "
                                f"high = {_fmt(grid['high'])}; allowed: low <= high")
            elif (isinstance(grid, Mapping) and grid.get("size") == 1
                  and grid.get("low") != grid.get("high")):
                problems.append(f"grids.{name}: size = 1 keeps only low = {_fmt(grid['low'])} "
                                f"and drops high = {_fmt(grid['high'])}; set low = high, or "
                                f"size >= 2")
    resnet, optim = config.get("resnet"), config.get("optim")
    if (isinstance(resnet, Mapping) and isinstance(optim, Mapping) and resnet.get("datasets")
            and resnet.get("batch_size") is None and optim.get("batch_size") == 1):
        problems.append("resnet.batch_size = null uses optim.batch_size = 1, but a ResNet batch "
                        "needs at least 2 examples (BatchNorm); set resnet.batch_size >= 2")
    synthetic = config.get("synthetic")
    if isinstance(synthetic, Mapping) and not _ordered(synthetic, "u_low", "u_high"):
        problems.append(f"synthetic: u_low = {_fmt(synthetic['u_low'])} exceeds u_high = "
                        f"{_fmt(synthetic['u_high'])}; allowed: u_low <= u_high")
    entries = config.get("datasets")
    if isinstance(entries, Mapping):
        from labaug import datasets

        for name in entries:
            if name in datasets.builtin() or name == "synthetic":
                problems.append(f"datasets.{name}: {name!r} is the name of a built-in "
                                "experiment's data; give your dataset another name")
            elif not re.match(r"^[a-z][a-z0-9_]*$", str(name)):
                problems.append(f"datasets.{name}: a dataset name is lower-case letters, "
                                "digits and _, starting with a letter")
    root = config.get("output_root")
    if isinstance(root, str) and os.path.exists(root) and not os.path.isdir(root):
        problems.append(f"output_root = {_fmt(root)} is an existing file; allowed: a directory "
                        "(existing or not) that holds results/, figures/, logs/, checkpoints/")
    return problems


def _finite(value: Any, path: Sequence[Any]) -> list[str]:
    """NaN and inf pass JSON schema's number checks; name them here."""
    if isinstance(value, float) and not math.isfinite(value):
        return [f"{key_path(path)} = {value} must be a finite number"]
    if isinstance(value, Mapping):
        return [p for k, v in value.items() for p in _finite(v, [*path, k])]
    if isinstance(value, list | tuple):
        return [p for i, v in enumerate(value) for p in _finite(v, [*path, i])]
    return []


def config_errors(config: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """Every problem with ``config``, one line each, naming the key; empty when valid."""
    validator_cls = jsonschema.validators.validator_for(schema)
    validator = validator_cls(schema)
    errors = sorted(validator.iter_errors(dict(config)),
                    key=lambda e: (key_path(e.absolute_path), str(e.validator)))
    problems = [_describe(e) for e in errors]
    problems += _finite(dict(config), [])
    if not problems:
        problems = _relations(config)
    return problems


def _resolve(node: Any, schema: Mapping[str, Any]) -> Mapping[str, Any]:
    """A schema node with its ``$ref`` (``#/$defs/...``) followed."""
    if isinstance(node, Mapping) and "$ref" in node:
        target: Any = schema
        for part in str(node["$ref"]).lstrip("#/").split("/"):
            target = target[part]
        return _resolve(target, schema)
    return node if isinstance(node, Mapping) else {}


def normalize(config: Any, schema: Mapping[str, Any]) -> None:
    """Write every whole-number float at an integer-only key as an int, in place (``100.0`` ->
    ``100``; JSON schema counts both as integers). Every job then sees one type per key, and
    writing a value one way or the other is the same config (no rerun)."""

    def walk(value: Any, node: Any) -> Any:
        node = _resolve(node, schema)
        types = _types(node)
        if (isinstance(value, float) and "integer" in types and "number" not in types
                and value.is_integer()):
            return int(value)
        if isinstance(value, dict):
            props = node.get("properties", {})
            extra = node.get("additionalProperties")
            for key in value:
                value[key] = walk(value[key], props.get(key, extra if isinstance(extra, Mapping)
                                                        else {}))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                value[i] = walk(item, node.get("items", {}))
        return value

    walk(config, schema)


def validate_config(config: Mapping[str, Any],
                    schema: str | os.PathLike[str] | Mapping[str, Any] = SCHEMA_PATH) -> None:
    """Raise ConfigError listing every key of ``config`` that the schema rejects; a valid
    config is `normalize`d in place."""
    loaded = schema if isinstance(schema, Mapping) else load_schema(schema, config)
    problems = config_errors(config, loaded)
    if not problems:
        normalize(config, loaded)
    if problems:
        lines = "\n".join(f"  - {p}" for p in "\n".join(problems).splitlines())
        raise ConfigError(
            f"invalid configuration ({len(problems)} problem{'s' if len(problems) > 1 else ''}"
            f"); fix these keys in config.yaml or your --configfile:\n{lines}")
