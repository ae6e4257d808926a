"""MNIST-format datasets read from their original IDX files, gzipped or not: Fashion-MNIST (as
Debian's package `dataset-fashion-mnist` installs it, or under the data root) and MNIST.

The files are looked for, in order, under `<data_root>/<Name>/raw/` (torchvision's layout),
`<data_root>/<name>/`, `<data_root>/` itself and the system's data set folder; the first folder that
holds all four files is read. No download happens here (`allow_download` goes through torchvision).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from .errors import UserError

FILES = {False: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         True: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
SOURCES = {  # source: (folders under the data root, the system's folder, its Debian package, class names)
    "fashionmnist": (["FashionMNIST/raw", "fashion-mnist", "fashionmnist"], "/usr/share/datasets/fashion-mnist",
                     "dataset-fashion-mnist", FASHION_CLASSES),
    "mnist": (["MNIST/raw", "mnist"], None, None, [str(i) for i in range(10)]),
}
_DTYPES = {0x08: np.uint8}


def read_idx(path: str | Path) -> np.ndarray:
    """One IDX file (`.gz` or raw) as an array; a malformed file is one line naming it."""
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise UserError(f"{path} is not a readable IDX file ({type(e).__name__}: {e}); replace it") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise UserError(f"{path} is not an IDX file of unsigned bytes (magic {raw[:4].hex()}); replace it")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    start, n = 4 + 4 * ndim, int(np.prod(dims)) if dims else 0
    if len(raw) != start + n:
        raise UserError(f"{path} holds {len(raw) - start} bytes of data where its header says {n}: truncated or "
                        "corrupt; replace it")
    return np.frombuffer(raw, dtype=_DTYPES[raw[2]], offset=start).reshape(dims)


def _file(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def find(source: str, data_root: str | Path) -> Path:
    """The first folder that holds the source's four IDX files."""
    subdirs, system, package, _ = SOURCES[source]
    root = Path(data_root)
    folders = [root / d for d in subdirs] + [root] + ([Path(system)] if system else [])
    for folder in folders:
        if all(_file(folder, n) for pair in FILES.values() for n in pair):
            return folder
    where = ", ".join(str(f) for f in folders)
    hint = f"install Debian's package {package} (apt-get install {package}: {system}) or " if package else ""
    raise UserError(f"{source} not found: no folder holds train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
                    f"t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte[.gz] (looked in {where}); {hint}put the "
                    f"four files in {root / subdirs[0]}")


def load(source: str, data_root: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """x uint8 [N, 1, 28, 28], y int64 [N], is_test bool [N] (the official test split), class names."""
    folder = find(source, data_root)
    xs, ys, ts = [], [], []
    for is_test, (img_name, lab_name) in FILES.items():
        x, y = read_idx(_file(folder, img_name)), read_idx(_file(folder, lab_name))
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise UserError(f"{folder}: {img_name} holds {x.shape} and {lab_name} {y.shape}; expected [N, H, W] "
                            "images with N labels")
        names = SOURCES[source][3]
        if y.size and int(y.max()) >= len(names):
            raise UserError(f"{folder / lab_name}: label {int(y.max())} but {source} has {len(names)} classes")
        xs.append(x[:, None])
        ys.append(y.astype(np.int64))
        ts.append(np.full(len(y), is_test))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ts), list(SOURCES[source][3])
