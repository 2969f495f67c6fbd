"""Bring your own images: a dataset is one config entry, checked, and rebuilt when it changes.

Datasets generated in a temporary folder in each user format (npz, imagefolder, idx, cifar) are
declared in an override file only (no edit of config.yaml or the package) and built into the
smoke Figs. 2 and 4; a changed file is noticed and named; every bad entry is refused naming
its key, before any job runs where that can be known.
"""

from __future__ import annotations

import gzip
import io
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
import yaml

from labaug import datasets
from labaug.data.raw import ChecksumError, fetch, load_npz, load_sources
from labaug.datasets.base import RawDataError
from labaug.datasets.formats import parse
from labaug.datasets.user import check_datasets, directory_of, files_of, user_dataset
from labaug.schema import ConfigError, load_schema, validate_config
from tests.archives import idx_bytes, spec_for, write_cifar10, write_fmnist
from tests.cluster.smoke import snakemake, write_overrides
from tests.conftest import REPO, merged_config

CLASSES = ("circle", "cross", "ring")


def shapes(n: int, seed: int, size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """n uint8 images (n, size, size) of three classes (a bright row band per class)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = rng.integers(0, 60, (n, size, size)).astype(np.uint8)
    for k in range(3):
        x[y == k, 2 * k:2 * k + 2, :] = 250
    return x, y.astype(np.int64)


def write_npz(path: Path, layout: str = "NHWC", **extra: Any) -> None:
    """A user's npz: colour images in ``layout``, labels, class names."""
    (xtr, ytr), (xte, yte) = shapes(60, 0), shapes(30, 1)
    def images(x: np.ndarray) -> np.ndarray:
        rgb = np.repeat(x[..., None], 3, axis=-1)
        return rgb if layout == "NHWC" else np.moveaxis(rgb, -1, 1)

    arrays = {"x_train": images(xtr), "y_train": ytr, "x_test": images(xte), "y_test": yte,
              "classes": np.array(CLASSES), **extra}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)


def write_imagefolder(root: Path, n_train: int = 24, n_test: int = 9) -> None:
    """train/<class>/*.png and test/<class>/*.png, grey 8x8 images."""
    from PIL import Image

    for split, n, seed in (("train", n_train, 2), ("test", n_test, 3)):
        x, y = shapes(n, seed)
        for i, (image, label) in enumerate(zip(x, y, strict=True)):
            folder = root / split / CLASSES[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image, mode="L").save(folder / f"{i:03d}.png")


def write_idx(root: Path) -> None:
    """Four idx files, two of them gzipped, as an MNIST-style dataset has."""
    (xtr, ytr), (xte, yte) = shapes(60, 4), shapes(30, 5)
    root.mkdir(parents=True, exist_ok=True)
    for name, array, zipped in (("train-images-idx3-ubyte", xtr, True),
                                ("train-labels-idx1-ubyte", ytr.astype(np.uint8), False),
                                ("t10k-images-idx3-ubyte", xte, True),
                                ("t10k-labels-idx1-ubyte", yte.astype(np.uint8), False)):
        data = idx_bytes(array)
        if zipped:
            (root / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (root / name).write_bytes(data)


@pytest.fixture
def sources(tmp_path: Path) -> dict[str, dict[str, Any]]:
    """One dataset of each user format, as config entries."""
    write_npz(tmp_path / "own" / "images.npz")
    write_imagefolder(tmp_path / "own" / "folder")
    write_idx(tmp_path / "own" / "idx")
    (tmp_path / "own" / "archive").mkdir(parents=True)
    write_cifar10(tmp_path / "own" / "archive", n_per_batch=12, n_test=20)
    return {
        "own_npz": {"format": "npz", "path": str(tmp_path / "own" / "images.npz")},
        "own_folder": {"format": "imagefolder", "path": str(tmp_path / "own" / "folder")},
        "own_idx": {"format": "idx", "path": str(tmp_path / "own" / "idx"),
                    "classes": list(CLASSES)},
        "own_cifar": {"format": "cifar",
                      "path": str(tmp_path / "own" / "archive" / "cifar-10-python.tar.gz")},
    }


# -- each format reads, and its data is checked --------------------------------------------------

def _read(name: str, entry: dict[str, Any], tmp: Path) -> datasets.RawImages:
    spec = user_dataset(name, entry)
    spec = replace(spec, files=files_of(spec, entry.get("checksums")))
    return fetch(spec, directory_of(spec), False, tmp / f"{name}.npz")


def test_every_user_format_reads_into_the_raw_contract(sources: dict[str, dict[str, Any]],
                                                       tmp_path: Path) -> None:
    for name, entry in sources.items():
        raw = _read(name, entry, tmp_path)
        assert raw.x_train.ndim == 4 and raw.x_train.shape[1:] == raw.x_test.shape[1:], name
        assert raw.y_train.dtype == np.int64 and raw.y_train.min() >= 0
        # The file's provenance: the sha256 of every source file read.
        recorded = load_sources(tmp_path / f"{name}.npz")
        assert recorded and all(len(d) == 64 for d in recorded.values()), name
    npz = load_npz(tmp_path / "own_npz.npz")
    assert npz.x_train.shape == (60, 3, 8, 8) and npz.classes == CLASSES   # NHWC -> NCHW
    folder = load_npz(tmp_path / "own_folder.npz")
    assert folder.x_train.shape == (24, 1, 8, 8) and folder.classes == CLASSES
    assert load_npz(tmp_path / "own_idx.npz").classes == CLASSES
    assert load_npz(tmp_path / "own_cifar.npz").classes[:2] == ("airplane", "automobile")


def test_float_images_and_every_layout_read(tmp_path: Path) -> None:
    for layout in ("NHWC", "NCHW"):
        path = tmp_path / f"{layout}.npz"
        write_npz(path, layout=layout)
        raw = _read("own", {"format": "npz", "path": str(path)}, tmp_path)
        assert raw.x_train.shape == (60, 3, 8, 8), layout
    floats = tmp_path / "floats.npz"
    (xtr, ytr), (xte, yte) = shapes(30, 0), shapes(12, 1)
    np.savez(floats, x_train=xtr / 255.0, y_train=ytr.astype(np.float64), x_test=xte / 255.0,
             y_test=yte)
    raw = _read("own", {"format": "npz", "path": str(floats)}, tmp_path)
    assert raw.x_train.dtype == np.float32 and raw.x_train.shape == (30, 1, 8, 8)
    assert raw.classes == ("0", "1", "2")                        # names from the labels


def _problem(entry: dict[str, Any], tmp: Path, pair: list[int] | None = None) -> str:
    config = {"datasets": {"own": entry}, "image": {"pairs": {"own": pair} if pair else {}}}
    problems = check_datasets(config, ["own"])
    if problems:
        return "\n".join(problems)
    with pytest.raises(RawDataError) as info:
        _read("own", entry, tmp)
    return str(info.value)


def test_bad_entries_are_named_by_key(tmp_path: Path) -> None:
    # a missing file, a missing split, a missing idx file
    assert "datasets.own.path = " in _problem({"format": "npz", "path": str(tmp_path / "x.npz")},
                                              tmp_path)
    write_imagefolder(tmp_path / "folder")
    for p in (tmp_path / "folder" / "test").rglob("*"):
        if p.is_file():
            p.unlink()
    assert "datasets.own: " in _problem({"format": "imagefolder",
                                         "path": str(tmp_path / "folder")}, tmp_path)
    write_idx(tmp_path / "idx")
    (tmp_path / "idx" / "t10k-labels-idx1-ubyte").unlink()
    assert "lacks t10k-labels-idx1-ubyte" in _problem({"format": "idx",
                                                       "path": str(tmp_path / "idx")}, tmp_path)
    # labels outside 0..K-1, and a class without training examples
    bad = tmp_path / "bad.npz"
    (xtr, ytr), (xte, yte) = shapes(30, 0), shapes(12, 1)
    np.savez(bad, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte + 1, classes=np.array(CLASSES))
    assert re.search(r"datasets\.own test: labels \[3\] outside 0\.\.2",
                     _problem({"format": "npz", "path": str(bad)}, tmp_path))
    np.savez(bad, x_train=xtr, y_train=np.where(ytr == 1, 2, ytr), x_test=xte, y_test=yte,
             classes=np.array(CLASSES))
    assert "class 'cross' has no training examples" in _problem(
        {"format": "npz", "path": str(bad)}, tmp_path)
    # train and test of different shapes, images of mixed shapes
    np.savez(bad, x_train=xtr, y_train=ytr, x_test=shapes(12, 1, size=9)[0], y_test=yte)
    assert "training images are 1x8x8 but test images 1x9x9" in _problem(
        {"format": "npz", "path": str(bad)}, tmp_path)
    from PIL import Image

    odd = tmp_path / "folder2"
    write_imagefolder(odd)
    Image.fromarray(np.zeros((9, 9), np.uint8), mode="L").save(odd / "train" / "ring" / "x.png")
    assert "images of mixed shapes in train/" in _problem({"format": "imagefolder",
                                                          "path": str(odd)}, tmp_path)
    # fewer than 2 classes; a pair naming a missing class
    single = tmp_path / "single"
    write_imagefolder(single)
    for name in ("cross", "ring"):
        for split in ("train", "test"):
            for p in (single / split / name).glob("*"):
                p.unlink()
            (single / split / name).rmdir()
    assert "1 class (circle); a dataset needs at least 2" in _problem(
        {"format": "imagefolder", "path": str(single)}, tmp_path)
    assert "image.pairs.own = [0, 5] names a class that own does not have; its 3 classes" in \
        _problem({"format": "imagefolder", "path": str(odd)}, tmp_path, pair=[0, 5])


def test_the_schema_checks_the_entry_keys(tmp_path: Path) -> None:
    schema = REPO / "workflow" / "schemas" / "config.schema.yaml"
    config = merged_config()
    config["datasets"] = {"own": {"format": "hdf5", "path": "x"},
                          "fmnist": {"format": "idx", "path": "y"},
                          "two": {"path": "z"}}
    with pytest.raises(ConfigError) as info:
        validate_config(config, load_schema(schema, config))
    text = str(info.value)
    assert "datasets.own.format = 'hdf5' is not allowed; choose from: npz, imagefolder, idx, " \
           "cifar" in text
    assert "datasets.two.format: required key missing (format)" in text
    config["datasets"] = {"fmnist": {"format": "idx", "path": "y"}}
    with pytest.raises(ConfigError, match="datasets.fmnist: 'fmnist' is the name of a built-in"):
        validate_config(config, load_schema(schema, config))
    # A user dataset needs neither a pair nor a source directory; a built-in one keeps both.
    config["datasets"] = {"mine": {"format": "npz", "path": "m.npz"}}
    config["image_datasets"] = ["mine"]
    validate_config(config, load_schema(schema, config))


def test_a_checksum_mismatch_says_whether_the_file_or_the_entry_is_wrong(
        tmp_path: Path) -> None:
    write_fmnist(tmp_path)
    with pytest.raises(ChecksumError, match=r"not the official .*the checksum is the published"):
        fetch("fmnist", tmp_path, False, tmp_path / "a.npz")
    good = spec_for("fmnist", tmp_path).files[0]
    with pytest.raises(ChecksumError, match=r"either the file changed .* or the checksum your "
                                            r"config gives"):
        fetch("fmnist", tmp_path, False, tmp_path / "b.npz",
              checksums={good.name: "0" * 64})
    entry = {"format": "npz", "path": str(tmp_path / "own.npz"),
             "checksums": {"own.npz": "1" * 64}}
    write_npz(tmp_path / "own.npz")
    with pytest.raises(ChecksumError, match="or the checksum your config gives"):
        _read("own", entry, tmp_path)


def test_parse_dispatches_by_format() -> None:
    spec = user_dataset("own", {"format": "npz", "path": "unused.npz"})
    with pytest.raises(RawDataError, match="lacks x_test, y_test"):
        buffer = io.BytesIO()
        x, y = shapes(6, 0)
        np.savez(buffer, x_train=x, y_train=y)
        parse(spec, {"unused.npz": buffer.getvalue()})


# -- through the workflow --------------------------------------------------------------------

@pytest.mark.slow
def test_user_datasets_of_every_format_build_figs_2_and_4_and_changes_rebuild(
        sources: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    names = list(sources)
    work = tmp_path / "run"
    work.mkdir()
    # One method without random draws keeps the run short; every format runs every step.
    write_overrides(work, {"seeds": [0], "datasets": sources, "image_datasets": names,
                           "resnet": {"datasets": names}, "variances": ["zero"],
                           "methods": ["weight_decay"]})
    assert "datasets" not in yaml.safe_load((REPO / "config.yaml").read_text()) or \
        not yaml.safe_load((REPO / "config.yaml").read_text())["datasets"]
    proc = snakemake(work, "--cores", "2", "figures/fig2.pdf", "figures/fig4.pdf", timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    for name in names:
        with xr.open_dataset(work / "results" / "linear" / f"{name}_zero.nc") as ds:
            assert ds["test_error"].notnull().all(), name
            assert ds.attrs["class_pair_indices"].tolist() == [0, 1]     # the default pair
        log = (work / "logs" / "data" / f"fetch_{name}.log").read_text()
        assert "sha256" in log, name
    with xr.open_dataset(work / "results" / "resnet" / "own_folder.nc") as ds:
        assert ds["test_error"].notnull().all()
    for figure in ("fig2", "fig4"):
        text = (work / "logs" / "figures" / f"{figure}.log").read_text()
        assert all(n in text for n in names), figure

    # A changed file reruns its dataset's preparation, which names it.
    changed = Path(sources["own_folder"]["path"]) / "train" / "cross" / "001.png"
    from PIL import Image

    Image.fromarray(np.full((8, 8), 7, np.uint8), mode="L").save(changed)
    dry = snakemake(work, "-n", "--cores", "1", "figures/fig2.pdf")
    out = dry.stdout + dry.stderr
    assert "data/raw/own_folder.npz" in out and "data/raw/own_npz.npz" not in out, out[-3000:]
    proc = snakemake(work, "--cores", "1", "data/raw/own_folder.npz")
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (work / "logs" / "data" / "fetch_own_folder.log").read_text()
    assert "1 file(s) changed since the last preparation: train/cross/001.png" in log
    # Editing the entry reruns the preparation too.
    extra = work / "classes.yaml"
    extra.write_text(yaml.safe_dump({"datasets": {"own_npz": {
        **sources["own_npz"], "classes": ["o", "x", "r"]}}}))
    dry = snakemake(work, "-n", "--cores", "1", "figures/fig2.pdf", configs=[extra])
    assert "data/raw/own_npz.npz" in dry.stdout + dry.stderr


@pytest.mark.slow
def test_a_bad_pair_of_a_user_dataset_stops_the_dag(sources: dict[str, dict[str, Any]],
                                                    tmp_path: Path) -> None:
    write_overrides(tmp_path, {"datasets": sources, "image_datasets": ["own_folder"],
                               "image": {"pairs": {"own_folder": [0, 3]}}})
    proc = snakemake(tmp_path, "-n", "--cores", "1", "figures/fig2.pdf")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "image.pairs.own_folder = [0, 3] names a class that own_folder does not have" in out
