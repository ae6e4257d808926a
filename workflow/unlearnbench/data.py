"""Datasets, splits and forget requests.

Every source (scikit-learn digits, MNIST and Fashion-MNIST from their IDX files (idx.py),
torchvision datasets, an ImageFolder) is converted once into a
canonical archive: `x` uint8 [N, C, H, W], `y` int64 [N], `is_test` bool [N] (the source's official
test split, all False when it has none), `mean`/`std` float per channel (of the non-test part).
Splits and forget requests are index files into that pooled array; `RequestData` gives the
named index views (forget, retain, test of retained / forgotten classes, ...) every stage uses, and
`view_indices` the data views an unlearning method may be handed (rule data_view).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import idx
from .errors import UserError
from .infra.lazy import F, torch
from .io import read_json, read_npz

# Classes per source, known before any data is read (used to check forget classes in the config).
NUM_CLASSES = {"digits": 10, "mnist": 10, "fashionmnist": 10, "cifar10": 10, "cifar100": 100, "svhn": 10}
# Images per source (official training part, official test part), known before any data is read
# (used to warn about a batch size that covers the whole training set).
NUM_SAMPLES = {"digits": (1797, 0), "mnist": (60000, 10000), "fashionmnist": (60000, 10000), "cifar10": (50000, 10000),
               "cifar100": (50000, 10000), "svhn": (73257, 26032)}
TORCHVISION_SOURCES = {
    "mnist": ("MNIST", "MNIST/raw/train-images-idx3-ubyte (+ labels, t10k-*)"),
    "fashionmnist": ("FashionMNIST", "FashionMNIST/raw/train-images-idx3-ubyte (+ labels, t10k-*)"),
    "cifar10": ("CIFAR10", "cifar-10-batches-py/ (data_batch_1..5, test_batch)"),
    "cifar100": ("CIFAR100", "cifar-100-python/ (train, test, meta)"),
    "svhn": ("SVHN", "train_32x32.mat and test_32x32.mat"),
}


def approx_train_size(spec: dict[str, Any]) -> int | None:
    """About how many training images a dataset entry gives (None when its source's size is unknown)."""
    if spec.get("source") not in NUM_SAMPLES:
        return None
    train, test = NUM_SAMPLES[spec["source"]]
    if spec.get("max_per_class"):
        train = min(train, int(spec["max_per_class"]) * NUM_CLASSES[spec["source"]])
    if not test:
        train = int(train * (1 - float(spec.get("test_fraction", 0.2))))
    return int(train * (1 - float(spec.get("val_fraction", 0.1))))


# --------------------------------------------------------------------------- preparation
def _resize_channels(x: np.ndarray, image_size: int, channels: int) -> np.ndarray:
    """uint8 or float [N,C,H,W] -> uint8 [N,channels,image_size,image_size]."""
    t = torch.from_numpy(np.ascontiguousarray(x)).float()
    if x.dtype == np.uint8:
        t = t / 255.0
    if t.shape[-1] != image_size or t.shape[-2] != image_size:
        t = F.interpolate(t, size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=True)
    if t.shape[1] != channels:
        if t.shape[1] == 1:
            t = t.repeat(1, channels, 1, 1)
        elif channels == 1:
            t = t.mean(dim=1, keepdim=True)
        else:
            raise UserError(f"cannot convert {t.shape[1]} channels to {channels}; use channels 1 or 3")
    return (t.clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def _load_digits() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None]  # [N,1,8,8] in [0,1]
    return x, d.target.astype(np.int64), np.zeros(len(d.target), dtype=bool)


def _load_torchvision(source: str, root: Path, download: bool):
    import torchvision.datasets as tvd

    cls_name, expected = TORCHVISION_SOURCES[source]
    cls = getattr(tvd, cls_name)
    parts = []
    for is_test in (False, True):
        try:
            if source == "svhn":
                ds = cls(str(root), split="test" if is_test else "train", download=download)
                x, y = ds.data, np.asarray(ds.labels)
            else:
                ds = cls(str(root), train=not is_test, download=download)
                x = ds.data.numpy() if torch.is_tensor(ds.data) else np.asarray(ds.data)
                y = np.asarray(ds.targets)
                x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
        except RuntimeError as e:
            raise UserError(
                f"{source} not found under {root} (expected {expected}); put it there or set "
                f"allow_download: true in config.yaml [{str(e).splitlines()[0]}]"
            ) from None
        parts.append((x, y.astype(np.int64), np.full(len(y), is_test)))
    return tuple(np.concatenate(a) for a in zip(*parts))


def _load_imagefolder(root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """`root/train/<class>/*` and optional `root/test/<class>/*`, or `root/<class>/*` (no test split)."""
    from PIL import Image

    if not root.is_dir():
        raise UserError(f"ImageFolder dataset {root} does not exist; set datasets.<name>.path to a folder of class subfolders")
    splits = [(root / "train", False), (root / "test", True)] if (root / "train").is_dir() else [(root, False)]
    classes = sorted(p.name for p in splits[0][0].iterdir() if p.is_dir())
    if not classes:
        raise UserError(f"ImageFolder dataset {splits[0][0]} has no class subfolders")
    xs, ys, ts = [], [], []
    exts = {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp"}
    for folder, is_test in splits:
        if not folder.is_dir():
            continue
        for ci, c in enumerate(classes):
            for f in sorted((folder / c).glob("*")):
                if f.suffix.lower() not in exts:
                    continue
                try:
                    with Image.open(f) as im:
                        xs.append(np.asarray(im.convert("RGB").resize((64, 64)), dtype=np.uint8).transpose(2, 0, 1))
                except (OSError, ValueError) as e:  # PIL's UnidentifiedImageError is an OSError
                    raise UserError(f"ImageFolder file {f} is not a readable image ({type(e).__name__}); "
                                    "remove it or replace it") from None
                ys.append(ci)
                ts.append(is_test)
    if not xs:
        raise UserError(f"ImageFolder dataset {root} contains no images")
    return np.stack(xs), np.asarray(ys, np.int64), np.asarray(ts, bool), classes


def prepare_dataset(spec: dict[str, Any], data_root: str | Path, allow_download: bool = False) -> dict[str, np.ndarray]:
    """Load a dataset source and convert it to the canonical archive (see module docstring)."""
    source = spec["source"]
    size, channels = int(spec["image_size"]), int(spec["channels"])
    if source == "digits":
        x, y, is_test = _load_digits()
        class_names = [str(i) for i in range(10)]
    elif source in idx.SOURCES and not allow_download:  # the original IDX files, .gz or not (idx.py)
        x, y, is_test, class_names = idx.load(source, data_root)
    elif source in TORCHVISION_SOURCES:
        x, y, is_test = _load_torchvision(source, Path(data_root), allow_download)
        class_names = [str(i) for i in range(int(y.max()) + 1)]
    elif source == "imagefolder":
        x, y, is_test, class_names = _load_imagefolder(Path(data_root) / spec["path"])
    else:
        raise UserError(f"unknown dataset source {source!r}")
    if spec.get("max_per_class"):  # optional subsampling for quick runs (deterministic: first k)
        keep = np.concatenate([np.flatnonzero((y == c) & (is_test == t))[: spec["max_per_class"]]
                               for c in np.unique(y) for t in (False, True)])
        keep.sort()
        x, y, is_test = x[keep], y[keep], is_test[keep]
    x = _resize_channels(x, size, channels)
    ref = x[~is_test].astype(np.float64) / 255.0
    return {
        "x": x, "y": y, "is_test": is_test,
        "mean": ref.mean(axis=(0, 2, 3)).astype(np.float32),
        "std": np.maximum(ref.std(axis=(0, 2, 3)), 1e-3).astype(np.float32),
        "class_names": np.asarray(class_names),
    }


# --------------------------------------------------------------------------- splits
def make_split(y: np.ndarray, is_test: np.ndarray, val_fraction: float, test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Stratified, seeded train/val/test indices into the pooled arrays.

    The source's official test split is kept as the test set; otherwise `test_fraction` of the data
    is held out. `val_fraction` of the remaining (non-test) data becomes the validation set.
    """
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    try:
        if is_test.any():
            test, rest = idx[is_test], idx[~is_test]
        else:
            rest, test = train_test_split(idx, test_size=test_fraction, stratify=y, random_state=seed)
        if val_fraction > 0:
            train, val = train_test_split(rest, test_size=val_fraction, stratify=y[rest], random_state=seed + 1)
        else:
            train, val = rest, idx[:0]
    except ValueError as e:  # scikit-learn: too few samples of a class for a stratified split
        raise UserError(f"cannot split the dataset's {len(y)} images (val_fraction {val_fraction}, test_fraction "
                        f"{test_fraction}): {' '.join(str(e).split())}") from None
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


# --------------------------------------------------------------------------- forget requests
def make_forget_request(y: np.ndarray, split: dict[str, np.ndarray], scenario: dict[str, Any], num_classes: int) -> dict[str, Any]:
    """Forget/retain indices (into the pooled arrays) for a class, several classes, or a random fraction."""
    train = np.asarray(split["train"])
    kind = scenario["type"]
    if kind == "class":
        classes = sorted(int(c) for c in scenario["classes"])
        bad = [c for c in classes if not 0 <= c < num_classes]
        if bad:
            raise UserError(f"forget class {bad[0]} is out of range: this dataset has classes 0..{num_classes - 1}")
        if len(classes) >= num_classes:
            raise UserError("a class forget request must leave at least one class to retain")
        is_forget = np.isin(y[train], classes)
    elif kind == "random":
        rng = np.random.default_rng(scenario.get("seed", 0))
        pool = train if not scenario.get("classes") else train[np.isin(y[train], scenario["classes"])]
        n = int(scenario["count"]) if scenario.get("count") else int(round(scenario["fraction"] * len(pool)))
        if n > len(pool):
            raise UserError(f"random forget request asks for {n} samples but only {len(pool)} are eligible")
        chosen = rng.choice(pool, size=n, replace=False)
        is_forget = np.isin(train, chosen)
        classes = []
    else:
        raise UserError(f"unknown forget request type {kind!r}; use 'class' or 'random'")
    forget, retain = train[is_forget], train[~is_forget]
    if len(forget) == 0:
        raise UserError(f"forget request {scenario} selects no training samples; check its classes/fraction")
    return {"type": kind, "forget_classes": classes, "forget": np.sort(forget), "retain": np.sort(retain)}


# --------------------------------------------------------------------------- checks of the files
ARCHIVE_KEYS = ("x", "y", "is_test", "mean", "std", "class_names")


def read_archive(path) -> dict[str, np.ndarray]:
    """The canonical dataset archive, checked: keys, dtypes and matching lengths."""

    d = read_npz(path)
    fix = "delete it and rerun rule prepare_dataset"
    missing = [k for k in ARCHIVE_KEYS if k not in d]
    if missing:
        raise UserError(f"{path} is not a dataset archive (missing {', '.join(missing)}); {fix}")
    if d["x"].dtype != np.uint8 or d["x"].ndim != 4 or d["y"].ndim != 1 or len(d["x"]) != len(d["y"]) \
            or len(d["is_test"]) != len(d["y"]) or len(d["mean"]) != d["x"].shape[1]:
        raise UserError(f"{path} has inconsistent arrays (x {d['x'].dtype}{list(d['x'].shape)}, y {list(d['y'].shape)}); {fix}")
    if len(d["y"]) == 0:
        raise UserError(f"{path} holds no images; {fix}")
    if d["y"].min() < 0 or d["y"].max() >= len(d["class_names"]):
        raise UserError(f"{path} has labels outside 0..{len(d['class_names']) - 1}; {fix}")
    for k in ("mean", "std"):
        if not np.issubdtype(d[k].dtype, np.number) or not np.isfinite(d[k]).all():
            raise UserError(f"{path}: {k} holds non-finite values ({d[k].tolist()}); {fix}")
    if (d["std"] <= 0).any():
        raise UserError(f"{path}: std holds a value <= 0 ({d['std'].tolist()}); {fix}")
    return d


def _index_list(values, name: str, n: int, path) -> np.ndarray:
    try:
        idx = np.asarray(values, dtype=np.int64)
    except (TypeError, ValueError):
        raise UserError(f"{path}: {name} must be a list of integer indices; delete it and rerun") from None
    if idx.ndim != 1:
        raise UserError(f"{path}: {name} must be a flat list of indices; delete it and rerun")
    if len(idx) and (idx.min() < 0 or idx.max() >= n):
        bad = idx[(idx < 0) | (idx >= n)][0]
        raise UserError(f"{path}: {name} holds index {bad}, outside the archive's 0..{n - 1}; delete it and rerun")
    if len(np.unique(idx)) != len(idx):
        dup = idx[np.flatnonzero(np.diff(np.sort(idx)) == 0)[0]]
        raise UserError(f"{path}: {name} holds index {dup} twice; delete it and rerun")
    return idx


def check_split(split: dict, n: int, path) -> None:
    """train/val/test: in-range, duplicate-free, pairwise disjoint index lists."""
    parts = {}
    for k in ("train", "val", "test"):
        if k not in split:
            raise UserError(f"{path} is not a split file (no {k!r}); delete it and rerun rule make_split")
        parts[k] = _index_list(split[k], k, n, path)
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        both = np.intersect1d(parts[a], parts[b])
        if len(both):
            raise UserError(f"{path}: index {both[0]} is in both {a} and {b}; delete it and rerun rule make_split")


def check_request(req: dict, split: dict, y: np.ndarray, path) -> None:
    """forget/retain: in-range, duplicate-free, disjoint, together exactly the training split, and
    (class requests) forget = the training samples of the forget classes."""
    for k in ("type", "forget_classes", "forget", "retain"):
        if k not in req:
            raise UserError(f"{path} is not a forget request (no {k!r}); delete it and rerun rule make_forget_request")
    forget, retain = _index_list(req["forget"], "forget", len(y), path), _index_list(req["retain"], "retain", len(y), path)
    both = np.intersect1d(forget, retain)
    if len(both):
        raise UserError(f"{path}: sample {both[0]} is in both the forget and the retain set; delete it and rerun "
                        "rule make_forget_request")
    train = np.asarray(split["train"], dtype=np.int64)
    if not np.array_equal(np.sort(np.concatenate([forget, retain])), np.sort(train)):
        raise UserError(f"{path}: forget and retain do not cover exactly the training split (stale request?); "
                        "delete it and rerun rule make_forget_request")
    if len(forget) == 0:
        raise UserError(f"{path}: the forget set is empty; check the scenario")
    if req["type"] == "class" and not (np.isin(y[forget], req["forget_classes"]).all()
                                       and not np.isin(y[retain], req["forget_classes"]).any()):
        raise UserError(f"{path}: the forget set is not exactly the training samples of classes {req['forget_classes']}; "
                        "delete it and rerun rule make_forget_request")


# --------------------------------------------------------------------------- loading and views
def to_float(x_uint8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x_uint8)).float().div_(255.0)


@dataclass
class RequestData:
    """The pooled archive with its split and one forget request, as named index views."""
    data: dict[str, np.ndarray]
    split: dict[str, Any]
    request: dict[str, Any]

    @classmethod
    def load(cls, data_path, split_path, request_path) -> "RequestData":
        """Load and check the three files (one UserError line naming the bad file on any problem)."""

        data = read_archive(data_path)
        split = read_json(split_path)
        check_split(split, len(data["y"]), split_path)
        request = read_json(request_path)
        check_request(request, split, data["y"], request_path)
        return cls(data, split, request)

    @property
    def y(self) -> np.ndarray:
        return self.data["y"]

    @property
    def num_classes(self) -> int:
        return len(self.data["class_names"])

    @property
    def forget_classes(self) -> list[int]:
        return list(self.request["forget_classes"])

    def _idx(self, key: str, source) -> np.ndarray:
        return np.asarray(source[key], dtype=np.int64)

    @property
    def forget(self) -> np.ndarray:
        return self._idx("forget", self.request)

    @property
    def retain(self) -> np.ndarray:
        return self._idx("retain", self.request)

    @property
    def train(self) -> np.ndarray:
        return self._idx("train", self.split)

    @property
    def test(self) -> np.ndarray:
        return self._idx("test", self.split)

    @property
    def val(self) -> np.ndarray:
        return self._idx("val", self.split)

    def _of_forget_classes(self, idx: np.ndarray) -> np.ndarray:
        return np.isin(self.y[idx], self.forget_classes)

    @property
    def test_retain(self) -> np.ndarray:
        """Test samples of the retained classes (every test sample for random forgetting)."""
        return self.test[~self._of_forget_classes(self.test)]

    @property
    def test_forget(self) -> np.ndarray:
        """Test samples of the forgotten classes (empty for random forgetting)."""
        return self.test[self._of_forget_classes(self.test)]

    @property
    def val_retain(self) -> np.ndarray:
        return self.val[~self._of_forget_classes(self.val)]

    def tensors(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(x in [0,1], y) of the given pooled indices."""
        idx = np.asarray(idx, dtype=np.int64)
        return to_float(self.data["x"][idx]), torch.from_numpy(self.y[idx].astype(np.int64))


_SUBSET = re.compile(r"retain-(?:k(?P<k>\d+)|p(?P<p>[0-9.e-]+))-s(?P<seed>\d+)")


def view_indices(view: str, rd: RequestData) -> np.ndarray:
    """Pooled indices of a data view: forget, retain, val, or a seeded per-class retain subset
    `retain-k<k>-s<seed>` (k samples of each retained class) / `retain-p<fraction>-s<seed>`."""
    if view in ("forget", "retain", "val"):
        return getattr(rd, view)
    m = _SUBSET.fullmatch(view)
    if not m:
        raise UserError(f"unknown data view {view!r}; use forget, retain, val, retain-k<k>-s<seed> or retain-p<f>-s<seed>")
    rng = np.random.default_rng(int(m["seed"]))
    retain = rd.retain
    ry = rd.y[retain]
    chosen = []
    for c in np.unique(ry):
        members = rng.permutation(retain[ry == c])
        n = int(m["k"]) if m["k"] else max(1, int(round(float(m["p"]) * len(members))))
        chosen.append(members[:n])
    return np.sort(np.concatenate(chosen)) if chosen else retain[:0]


def load_view(path: str) -> tuple[Any, Any, bool]:
    """(x float [0,1], y int64, covers_all) of a data view file, checked: uint8 images [N,C,H,W] and
    as many integer labels (see check_view for the model it is fed to)."""

    v = read_npz(path)
    missing = {"x", "y", "covers_all"} - set(v)
    if missing:
        raise UserError(f"{path} is not a data view (missing {sorted(missing)}); delete it and rerun")
    x, y, fix = v["x"], v["y"], "delete it and rerun rule data_view"
    if np.issubdtype(x.dtype, np.inexact) and not np.isfinite(x).all():
        raise UserError(f"{path}: the images hold NaN or infinite values (a view holds uint8 pixels); {fix}")
    if x.dtype != np.uint8 or x.ndim != 4 or y.ndim != 1 or len(x) != len(y) or not np.issubdtype(y.dtype, np.integer):
        raise UserError(f"{path} is not a data view (x {x.dtype}{list(x.shape)}, y {y.dtype}{list(y.shape)}; expected "
                        f"uint8 images [N, C, H, W] and N integer labels); {fix}")
    return to_float(x), torch.from_numpy(y.astype(np.int64)), bool(v["covers_all"])


def check_view(path: str, x: Any, y: Any, input_shape: tuple[int, ...], num_classes: int, model: str) -> None:
    """A view fits the model it is fed to: images of the model's input shape, labels among its classes."""
    if tuple(x.shape[1:]) != tuple(input_shape):
        raise UserError(f"{path} holds images of shape {list(x.shape[1:])}, but the model {model} takes "
                        f"{list(input_shape)}; delete the view and rerun rule data_view (or rebuild the model)")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        bad = int(y[(y < 0) | (y >= num_classes)][0])
        raise UserError(f"{path} holds label {bad}, but the model {model} has classes 0..{num_classes - 1}; "
                        "delete the view and rerun rule data_view")


def check_card(card: Any, path: str) -> None:
    """A request card (what an unlearning method is told): type, forget classes within 0..num_classes-1."""
    fix = "delete it and rerun rule make_forget_request"
    if not isinstance(card, dict) or not {"type", "forget_classes", "num_classes"} <= set(card):
        raise UserError(f"{path} is not a request card (needs type, forget_classes, num_classes); {fix}")
    n, classes = card["num_classes"], card["forget_classes"]
    if not isinstance(n, int) or isinstance(n, bool) or n < 2:
        raise UserError(f"{path}: num_classes must be an integer >= 2, not {n!r}; {fix}")
    if not isinstance(classes, list) or not all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
        raise UserError(f"{path}: forget_classes must be a list of class indices, not {classes!r}; {fix}")
    bad = [c for c in classes if not 0 <= c < n]
    if bad:
        raise UserError(f"{path}: forget class {bad[0]} is out of range (classes 0..{n - 1}); {fix}")
    if card["type"] == "class" and not classes:
        raise UserError(f"{path}: a class request names no forget class; {fix}")
