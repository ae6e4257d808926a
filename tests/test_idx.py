"""Fashion-MNIST (and MNIST) from their original IDX files: the reader the real tier uses, run on
the committed sample (tests/data/fashion-mnist-sample: 30 training and 10 test images per class)."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from unlearnbench import idx
from unlearnbench.data import prepare_dataset
from unlearnbench.errors import UserError

SAMPLE = Path(__file__).parent / "data" / "fashion-mnist-sample"


def test_the_sample_reads_as_gzipped_idx():
    x, y, is_test, names = idx.load("fashionmnist", SAMPLE)
    assert x.shape == (400, 1, 28, 28) and x.dtype == np.uint8 and x.max() > 200
    assert np.bincount(y[~is_test]).tolist() == [30] * 10 and np.bincount(y[is_test]).tolist() == [10] * 10
    assert names[0] == "T-shirt/top" and names[9] == "Ankle boot"


@pytest.mark.parametrize("layout", ["FashionMNIST/raw", "fashion-mnist", "."])
def test_unzipped_files_in_torchvisions_or_a_plain_layout_read_the_same(tmp_path, layout):
    folder = tmp_path / layout
    folder.mkdir(parents=True, exist_ok=True)
    for f in SAMPLE.glob("*.gz"):
        (folder / f.stem).write_bytes(gzip.decompress(f.read_bytes()))
    a, b = idx.load("fashionmnist", tmp_path), idx.load("fashionmnist", SAMPLE)
    assert all(np.array_equal(u, v) for u, v in zip(a[:3], b[:3]))


def test_the_debian_packages_folder_is_found_when_the_data_root_has_none(tmp_path, monkeypatch):
    dirs, _, package, names = idx.SOURCES["fashionmnist"]
    monkeypatch.setitem(idx.SOURCES, "fashionmnist", (dirs, str(SAMPLE), package, names))
    assert idx.find("fashionmnist", tmp_path / "empty") == SAMPLE


def test_a_missing_dataset_is_one_line_naming_the_package_and_the_path(tmp_path, monkeypatch):
    dirs, _, package, names = idx.SOURCES["fashionmnist"]
    monkeypatch.setitem(idx.SOURCES, "fashionmnist", (dirs, str(tmp_path / "no-system-copy"), package, names))
    with pytest.raises(UserError) as e:
        idx.load("fashionmnist", tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and "apt-get install dataset-fashion-mnist" in msg and str(tmp_path / "FashionMNIST/raw") in msg


def test_a_truncated_or_foreign_file_is_one_line(tmp_path):
    shutil.copytree(SAMPLE, tmp_path / "d")
    f = tmp_path / "d" / "train-images-idx3-ubyte.gz"
    f.write_bytes(gzip.compress(gzip.decompress(f.read_bytes())[:-5]))
    with pytest.raises(UserError, match="truncated or corrupt"):
        idx.load("fashionmnist", tmp_path / "d")
    f.write_bytes(b"PK\x03\x04 not an idx file")
    with pytest.raises(UserError, match="not a readable IDX file|not an IDX file"):
        idx.load("fashionmnist", tmp_path / "d")


def test_prepare_dataset_gives_the_canonical_archive_with_the_datasets_class_names():
    spec = {"source": "fashionmnist", "image_size": 28, "channels": 1}
    d = prepare_dataset(spec, SAMPLE)
    assert d["x"].shape == (400, 1, 28, 28) and int(d["is_test"].sum()) == 100
    assert list(d["class_names"][:2]) == ["T-shirt/top", "Trouser"]
