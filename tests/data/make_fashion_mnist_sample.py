"""Writes tests/data/fashion-mnist-sample/: the first 30 training and 10 test images of every class
of Fashion-MNIST (MIT licence, Zalando Research), as the four original gzipped IDX files, so that CI
exercises the same reader as the real data. Made once from Debian's package:

    apt-get install dataset-fashion-mnist
    python tests/data/make_fashion_mnist_sample.py
"""

import gzip
from pathlib import Path

import numpy as np

SRC = Path("/usr/share/datasets/fashion-mnist")
OUT = Path(__file__).parent / "fashion-mnist-sample"
PER_CLASS = {"train": 30, "t10k": 10}


def read(path: Path) -> tuple[bytes, np.ndarray]:
    raw = gzip.decompress(path.read_bytes())
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return raw[:4], np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def write(path: Path, magic: bytes, a: np.ndarray) -> None:
    header = magic + b"".join(int(d).to_bytes(4, "big") for d in a.shape)
    path.write_bytes(gzip.compress(header + a.tobytes(), mtime=0))  # mtime 0: the same bytes every time


for part, k in PER_CLASS.items():
    mi, x = read(SRC / f"{part}-images-idx3-ubyte.gz")
    ml, y = read(SRC / f"{part}-labels-idx1-ubyte.gz")
    keep = np.sort(np.concatenate([np.flatnonzero(y == c)[:k] for c in range(10)]))
    OUT.mkdir(exist_ok=True)
    write(OUT / f"{part}-images-idx3-ubyte.gz", mi, x[keep])
    write(OUT / f"{part}-labels-idx1-ubyte.gz", ml, y[keep])
    print(part, len(keep))
