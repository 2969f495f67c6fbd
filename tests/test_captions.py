"""Captions state the configuration that built a figure, read from its result files."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import xarray as xr

from labaug.captions import ProvenanceCaption, built_config
from labaug.results import merge_configs, provenance
from tests.conftest import REPO, merged_config


def result_file(path: Path, part: dict[str, object], seeds: list[int]) -> Path:
    """A tiny result file whose provenance holds the config slice ``part``."""
    ds = xr.Dataset({"x": ("seed", np.zeros(len(seeds)))}, coords={"seed": seeds},
                    attrs=provenance(part))
    ds.to_netcdf(path)
    return path


def test_provenance_stores_the_slice_and_its_hash() -> None:
    attrs = provenance({"optim": {"epochs": 7}}, seed=3)
    assert json.loads(attrs["config"]) == {"optim": {"epochs": 7}}
    assert len(attrs["config_sha256"]) == 64 and attrs["seed"] == 3


def test_merge_configs_is_a_deep_union() -> None:
    merged = merge_configs([{"grids": {"a": {"size": 2}}, "optim": {"lr": 1}},
                            {"grids": {"b": {"size": 3}}, "optim": {"epochs": 5}}])
    assert merged == {"grids": {"a": {"size": 2}, "b": {"size": 3}},
                      "optim": {"lr": 1, "epochs": 5}}


def test_the_caption_states_what_built_the_files_not_the_current_config(tmp_path: Path) -> None:
    config = merged_config("smoke")
    built = json.loads(json.dumps(config))
    built["synthetic"]["n_train"] = 777          # the results were made with another value
    built["optim"]["epochs"] = 9
    files = [result_file(tmp_path / "r.nc", {"synthetic": built["synthetic"],
                                               "optim": built["optim"]}, [4, 5]),
             result_file(tmp_path / "t.nc", {"theory": built["theory"]}, [4])]
    merged, missing = built_config(config, [str(f) for f in files])
    assert not missing and merged["synthetic"]["n_train"] == 777 and merged["seeds"] == [4, 5]
    caption = ProvenanceCaption("fig1", "synthetic", config, REPO, [str(f) for f in files])
    text = str(caption)
    assert "777 training" in text and "9 epochs" in text and "seeds: 4, 5" in text
    assert "provenance of its result files" in text
    # Constant repr (no rerun trigger), and it travels to a job like any parameter.
    assert repr(caption) == repr(ProvenanceCaption("fig1", "synthetic", {**config, "seeds": [9]},
                                                   REPO, []))
    assert str(pickle.loads(pickle.dumps(caption))) == text


def test_without_result_files_the_caption_falls_back_to_the_config(tmp_path: Path) -> None:
    config = merged_config("smoke")
    text = str(ProvenanceCaption("fig1", "synthetic", config, REPO, [str(tmp_path / "no.nc")]))
    assert f"{config['synthetic']['n_train']} training" in text
    assert "workflow's config" in text


def test_the_caption_counts_where_the_run_agrees_with_the_claim(tmp_path: Path) -> None:
    from labaug.results import METHOD_DIM

    hp = np.arange(4)
    values = np.array([[[1.0], [1.0], [1.0], [1.0]],      # weight decay
                       [[1.0], [2.0], [0.5], [3.0]]])     # label smoothing: above at 2 of 3
    ds = xr.Dataset({"test_error": ((METHOD_DIM, "hp", "seed"), values)},
                    coords={METHOD_DIM: ["weight_decay", "label_smoothing"], "hp": hp,
                            "seed": [0]})
    ds.to_netcdf(tmp_path / "sweep.nc")
    from labaug.captions import claim_lines

    lines = claim_lines(tmp_path / "sweep.nc", [("test_error", "above")])
    assert lines == ["- sweep: Label smoothing test_error above weight decay's at 2 of 3 "
                     "nonzero grid points (the claim does NOT hold at the others)"]
    assert claim_lines(tmp_path / "sweep.nc", [("test_error", "below")])[0].count("1 of 3")
