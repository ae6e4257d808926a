import numpy as np
import pytest
from PIL import Image

from unlearnbench.data import make_forget_request, make_split, prepare_dataset
from unlearnbench.errors import UserError

DIGITS = {"source": "digits", "image_size": 16, "channels": 3}


@pytest.fixture(scope="module")
def digits():
    return prepare_dataset(DIGITS, "unused")


def test_prepare_digits_shapes_and_range(digits):
    assert digits["x"].shape == (1797, 3, 16, 16) and digits["x"].dtype == np.uint8
    assert digits["y"].shape == (1797,) and set(np.unique(digits["y"])) == set(range(10))
    assert not digits["is_test"].any()
    assert digits["x"].max() > 200 and digits["x"].min() == 0
    # repeated channels are identical copies of the grey image
    assert (digits["x"][:, 0] == digits["x"][:, 2]).all()
    assert digits["mean"].shape == (3,) and (digits["std"] > 0).all()


def test_split_is_disjoint_stratified_deterministic(digits):
    y = digits["y"]
    s1 = make_split(y, digits["is_test"], 0.1, 0.2, seed=0)
    s2 = make_split(y, digits["is_test"], 0.1, 0.2, seed=0)
    s3 = make_split(y, digits["is_test"], 0.1, 0.2, seed=1)
    for k in s1:
        assert np.array_equal(s1[k], s2[k])
    assert not np.array_equal(s1["test"], s3["test"])
    all_idx = np.concatenate([s1["train"], s1["val"], s1["test"]])
    assert len(all_idx) == len(np.unique(all_idx)) == len(y)
    assert len(s1["test"]) == pytest.approx(0.2 * len(y), abs=1)
    # stratified: class proportions in the test split match the data within one sample per class
    for c in range(10):
        assert abs((y[s1["test"]] == c).sum() - 0.2 * (y == c).sum()) <= 1


def test_official_test_split_is_kept():
    y = np.repeat(np.arange(3), 20)
    is_test = np.zeros(60, bool)
    is_test[::4] = True
    s = make_split(y, is_test, 0.25, 0.2, seed=0)
    assert np.array_equal(s["test"], np.flatnonzero(is_test))
    assert not np.isin(s["val"], s["test"]).any()


def _split(digits):
    return make_split(digits["y"], digits["is_test"], 0.1, 0.2, seed=0)


def test_class_forget_request(digits):
    split = _split(digits)
    req = make_forget_request(digits["y"], split, {"type": "class", "classes": [3, 5]}, 10)
    y = digits["y"]
    assert set(np.unique(y[req["forget"]])) == {3, 5}
    assert not np.isin(y[req["retain"]], [3, 5]).any()
    assert len(req["forget"]) + len(req["retain"]) == len(split["train"])
    assert req["forget_classes"] == [3, 5]


def test_random_forget_request_fraction_and_seed(digits):
    split = _split(digits)
    sc = {"type": "random", "fraction": 0.1, "seed": 4}
    a = make_forget_request(digits["y"], split, sc, 10)
    b = make_forget_request(digits["y"], split, sc, 10)
    assert np.array_equal(a["forget"], b["forget"])
    assert len(a["forget"]) == round(0.1 * len(split["train"]))
    assert np.isin(a["forget"], split["train"]).all() and not np.isin(a["forget"], a["retain"]).any()
    assert a["forget_classes"] == []


@pytest.mark.parametrize("scenario,match", [
    ({"type": "class", "classes": [10]}, "out of range"),
    ({"type": "class", "classes": list(range(10))}, "at least one class"),
    ({"type": "random", "count": 10**6}, "eligible"),
])
def test_bad_forget_requests(digits, scenario, match):
    with pytest.raises(UserError, match=match):
        make_forget_request(digits["y"], _split(digits), scenario, 10)


def test_empty_forget_set_is_an_error():
    y = np.array([0, 0, 1, 1, 2, 2])
    split = {"train": np.array([0, 1, 2, 3]), "val": np.array([], int), "test": np.array([4, 5])}
    with pytest.raises(UserError, match="selects no training samples"):
        make_forget_request(y, split, {"type": "class", "classes": [2]}, 3)


def test_missing_torchvision_dataset_names_expected_files(tmp_path):
    with pytest.raises(UserError, match="cifar-10-batches-py.*allow_download"):
        prepare_dataset({"source": "cifar10", "image_size": 32, "channels": 3}, tmp_path)


def test_imagefolder_with_train_and_test(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("test", 2)):
        for c in ("alice", "bob"):
            d = tmp_path / "faces" / split / c
            d.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(d / f"{i}.png")
    out = prepare_dataset({"source": "imagefolder", "path": "faces", "image_size": 16, "channels": 3}, tmp_path)
    assert out["x"].shape == (10, 3, 16, 16)
    assert out["is_test"].sum() == 4 and list(out["class_names"]) == ["alice", "bob"]


def test_imagefolder_missing_folder(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        prepare_dataset({"source": "imagefolder", "path": "nope", "image_size": 16, "channels": 3}, tmp_path)
