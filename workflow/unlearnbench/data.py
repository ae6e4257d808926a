"""Datasets, splits and forget requests.

Every source (scikit-learn digits, torchvision datasets, an ImageFolder) is converted once into a
canonical archive: `x` uint8 [N, C, H, W], `y` int64 [N], `is_test` bool [N] (the source's official
test split, all False when it has none), `mean`/`std` float per channel (of the non-test part).
Splits and forget requests are index files into that pooled array.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .errors import UserError

# Classes per source, known before any data is read (used to check forget classes in the config).
NUM_CLASSES = {"digits": 10, "mnist": 10, "fashionmnist": 10, "cifar10": 10, "cifar100": 100, "svhn": 10}
TORCHVISION_SOURCES = {
    "mnist": ("MNIST", "MNIST/raw/train-images-idx3-ubyte (+ labels, t10k-*)"),
    "fashionmnist": ("FashionMNIST", "FashionMNIST/raw/train-images-idx3-ubyte (+ labels, t10k-*)"),
    "cifar10": ("CIFAR10", "cifar-10-batches-py/ (data_batch_1..5, test_batch)"),
    "cifar100": ("CIFAR100", "cifar-100-python/ (train, test, meta)"),
    "svhn": ("SVHN", "train_32x32.mat and test_32x32.mat"),
}


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
                with Image.open(f) as im:
                    xs.append(np.asarray(im.convert("RGB").resize((64, 64)), dtype=np.uint8).transpose(2, 0, 1))
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
    if is_test.any():
        test, rest = idx[is_test], idx[~is_test]
    else:
        rest, test = train_test_split(idx, test_size=test_fraction, stratify=y, random_state=seed)
    if val_fraction > 0:
        train, val = train_test_split(rest, test_size=val_fraction, stratify=y[rest], random_state=seed + 1)
    else:
        train, val = rest, idx[:0]
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


# --------------------------------------------------------------------------- loading
def to_float(x_uint8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x_uint8)).float().div_(255.0)
