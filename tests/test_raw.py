"""Raw acquisition: the real readers on generated archives in the official on-disk layouts."""

from __future__ import annotations

import gzip
import pickle
import shutil
import urllib.error
from pathlib import Path

import numpy as np
import pytest

import labaug.data.raw as raw_mod
from labaug import datasets
from labaug.data.raw import (
    ChecksumError,
    RawDataError,
    RawImages,
    fetch,
    load_npz,
    local_source_files,
    parse_idx,
)
from labaug.jobs import fetch_job
from tests.archives import (
    WRITERS,
    idx_bytes,
    spec_for,
    write_cifar10,
    write_cifar100,
    write_fmnist,
)


def assert_same(got: RawImages, want: RawImages) -> None:
    """Two raw datasets hold identical arrays, dtypes and class names."""
    for name in ("x_train", "y_train", "x_test", "y_test"):
        a, b = getattr(got, name), getattr(want, name)
        assert a.dtype == (np.uint8 if name.startswith("x") else np.int64), name
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert got.classes == want.classes


def leftovers(directory: Path) -> list[str]:
    """Files or folders in ``directory`` (temp files and download folders must not remain)."""
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_cifar10_reader_parses_the_official_layout(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    want = write_cifar10(src, n_per_batch=7, n_test=9)
    out = tmp_path / "data" / "raw" / "cifar10.npz"
    got = fetch("cifar10", src, False, out, specs={"cifar10": spec_for("cifar10", src)})
    assert got.x_train.shape == (35, 3, 32, 32) and got.x_test.shape == (9, 3, 32, 32)
    assert got.classes[:2] == ("airplane", "automobile")
    assert_same(got, want)
    assert_same(load_npz(out), want)
    assert leftovers(out.parent) == ["cifar10.npz"]


@pytest.mark.parametrize("bytes_keys", [False, True])
def test_cifar100_reader_parses_the_official_layout(tmp_path: Path, bytes_keys: bool) -> None:
    want = write_cifar100(tmp_path, n_train=23, n_test=11, bytes_keys=bytes_keys)
    out = tmp_path / "cifar100.npz"
    got = fetch("cifar100", tmp_path, False, out,
                specs={"cifar100": spec_for("cifar100", tmp_path)})
    assert got.classes[:2] == ("apple", "aquarium_fish")
    assert_same(got, want)
    assert_same(load_npz(out), want)


@pytest.mark.parametrize("compressed", [True, False])
def test_fmnist_reader_parses_idx_files(tmp_path: Path, compressed: bool) -> None:
    want = write_fmnist(tmp_path, n_train=17, n_test=5, compressed=compressed)
    out = tmp_path / "fmnist.npz"
    got = fetch("fmnist", tmp_path, False, out, specs={"fmnist": spec_for("fmnist", tmp_path)})
    assert got.x_train.shape == (17, 1, 28, 28)
    assert got.classes[:2] == ("T-shirt/top", "Trouser") and len(got.classes) == 10
    assert_same(got, want)


def test_fmnist_checksum_is_of_decompressed_content(tmp_path: Path) -> None:
    """Recompressing the same idx bytes (as Debian did) still verifies."""
    write_fmnist(tmp_path)
    spec = spec_for("fmnist", tmp_path)
    for path in tmp_path.glob("*.gz"):
        path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()), compresslevel=1,
                                       mtime=12345))
    fetch("fmnist", tmp_path, False, tmp_path / "out.npz", specs={"fmnist": spec})
    assert (tmp_path / "out.npz").exists()


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100", "fmnist"])
def test_wrong_checksum_raises_before_unpickling_and_writes_nothing(
    tmp_path: Path, dataset: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    WRITERS[dataset](src)
    spec = spec_for(dataset, src)
    wrong = spec.with_digests({f.name: "0" * len(f.digest) for f in spec.files[:1]})

    def no_decoding(*args: object, **kwargs: object) -> object:
        raise AssertionError("decoded data before verifying it")

    monkeypatch.setattr(pickle, "loads", no_decoding)
    monkeypatch.setattr(raw_mod, "parse_idx", no_decoding)
    out = tmp_path / "raw" / f"{dataset}.npz"
    with pytest.raises(ChecksumError, match=spec.files[0].name):
        fetch(dataset, src, False, out, specs={dataset: wrong})
    assert not out.exists()
    assert leftovers(out.parent) == []


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100", "fmnist"])
def test_official_checksums_reject_generated_files(tmp_path: Path, dataset: str) -> None:
    """The real defaults are the official checksums, so a look-alike archive is refused."""
    WRITERS[dataset](tmp_path)
    with pytest.raises(ChecksumError, match="expected"):
        fetch(dataset, tmp_path, False, tmp_path / "out.npz")
    assert not (tmp_path / "out.npz").exists()


def test_official_checksums_match_torchvision() -> None:
    from torchvision.datasets import CIFAR10, CIFAR100, FashionMNIST

    assert datasets.builtin()["cifar10"].files[0].digest == CIFAR10.tgz_md5
    assert datasets.builtin()["cifar100"].files[0].digest == CIFAR100.tgz_md5
    assert {f.name: f.download_md5 for f in datasets.builtin()["fmnist"].files} == dict(
        FashionMNIST.resources)
    assert all(f.algorithm == "sha256" and f.decompressed and len(f.digest) == 64
               for f in datasets.builtin()["fmnist"].files)
    assert datasets.builtin()["cifar10"].files[0].url == CIFAR10.url
    assert datasets.builtin()["cifar100"].files[0].url == CIFAR100.url


def test_truncated_archive_fails_then_replacement_succeeds(tmp_path: Path) -> None:
    good = tmp_path / "good"
    good.mkdir()
    want = write_cifar10(good)
    spec = {"cifar10": spec_for("cifar10", good)}
    src = tmp_path / "src"
    src.mkdir()
    blob = (good / "cifar-10-python.tar.gz").read_bytes()
    (src / "cifar-10-python.tar.gz").write_bytes(blob[: len(blob) // 2])
    out = tmp_path / "raw" / "cifar10.npz"
    with pytest.raises(ChecksumError, match="corrupt, truncated"):
        fetch("cifar10", src, False, out, specs=spec)
    assert not out.exists()
    shutil.copy(good / "cifar-10-python.tar.gz", src / "cifar-10-python.tar.gz")
    assert_same(fetch("cifar10", src, False, out, specs=spec), want)
    assert out.exists()


def test_truncated_gzip_raises_a_clear_error(tmp_path: Path) -> None:
    write_fmnist(tmp_path)
    spec = {"fmnist": spec_for("fmnist", tmp_path)}
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(RawDataError, match="train-labels-idx1-ubyte.gz: corrupt or truncated"):
        fetch("fmnist", tmp_path, False, tmp_path / "out.npz", specs=spec)
    assert not (tmp_path / "out.npz").exists()


@pytest.mark.parametrize("source", ["missing_dir", None])
def test_no_source_and_no_download_says_which_file_goes_where(tmp_path: Path,
                                                                source: str | None) -> None:
    src = tmp_path / source if source else None
    with pytest.raises(RawDataError) as info:
        fetch("cifar10", src, False, tmp_path / "raw" / "cifar10.npz")
    msg = str(info.value)
    assert "cifar-10-python.tar.gz" in msg and "data_sources.cifar10" in msg
    if src is not None:
        assert str(src) in msg
    with pytest.raises(RawDataError) as info:
        fetch("fmnist", src, False, tmp_path / "raw" / "fmnist.npz")
    msg = str(info.value)
    assert all(f.name in msg for f in datasets.builtin()["fmnist"].files)
    assert "data_sources.fmnist" in msg and "dataset-fashion-mnist" in msg
    assert leftovers(tmp_path / "raw") == []


def test_download_is_verified_and_cleaned_up(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a local source the files come from torchvision's download helper."""
    import torchvision.datasets.utils as tv_utils

    mirror = tmp_path / "mirror"
    mirror.mkdir()
    want = write_fmnist(mirror)
    spec = spec_for("fmnist", mirror)
    calls: list[str] = []

    def fake_download(url: str, root: str, filename: str, md5: str | None) -> None:
        calls.append(url)
        shutil.copy(mirror / filename, Path(root) / filename)

    monkeypatch.setattr(tv_utils, "download_url", fake_download)
    out = tmp_path / "raw" / "fmnist.npz"
    assert_same(fetch("fmnist", None, True, out, specs={"fmnist": spec}), want)
    assert calls == [f.url for f in spec.files]
    assert leftovers(out.parent) == ["fmnist.npz"]


def test_failed_download_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets.utils as tv_utils

    def offline(url: str, root: str, filename: str, md5: str | None) -> None:
        (Path(root) / filename).write_bytes(b"partial")
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(tv_utils, "download_url", offline)
    out = tmp_path / "raw" / "cifar100.npz"
    with pytest.raises(RawDataError, match="download failed.*no network"):
        fetch("cifar100", tmp_path / "nowhere", True, out)
    assert leftovers(out.parent) == []


def test_local_source_comes_before_download(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets.utils as tv_utils

    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("downloaded although a local source exists")

    monkeypatch.setattr(tv_utils, "download_url", no_download)
    write_cifar100(tmp_path)
    spec = spec_for("cifar100", tmp_path)
    fetch("cifar100", tmp_path, True, tmp_path / "out.npz", specs={"cifar100": spec})


def test_fetch_job_reads_sources_and_checksum_overrides(tmp_path: Path) -> None:
    from tests.conftest import merged_config

    want = write_cifar10(tmp_path)
    digest = spec_for("cifar10", tmp_path).files[0].digest
    config = merged_config()
    config["data_sources"]["cifar10"] = str(tmp_path)
    config["allow_download"] = False
    with pytest.raises(ChecksumError):
        fetch_job(config, "cifar10", tmp_path / "a.npz")
    config["data_checksums"] = {"cifar10": {"cifar-10-python.tar.gz": digest}}
    assert_same(fetch_job(config, "cifar10", tmp_path / "b.npz"), want)
    assert_same(load_npz(tmp_path / "b.npz"), want)
    assert local_source_files("cifar10", tmp_path) == [str(tmp_path / "cifar-10-python.tar.gz")]
    assert local_source_files("cifar100", tmp_path) == []
    assert local_source_files("cifar10", None) == []


def test_parse_idx_rejects_malformed_files() -> None:
    good = idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
    np.testing.assert_array_equal(parse_idx(good), np.arange(24).reshape(2, 3, 4))
    with pytest.raises(RawDataError, match="shape"):
        parse_idx(good[:-1])
    with pytest.raises(RawDataError, match="not an idx"):
        parse_idx(b"\x00\x00\x0d\x01" + good[4:])


def test_unknown_dataset_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown raw dataset"):
        fetch("mnist", tmp_path, False, tmp_path / "x.npz")
