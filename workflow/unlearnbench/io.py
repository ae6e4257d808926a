"""Safe, atomic artefact I/O: JSON, NumPy archives and checkpoints (safetensors, no pickle)."""

from __future__ import annotations

import csv
import glob
import json
import os
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from . import __version__
from .errors import UserError

CKPT_FORMAT = "unlearnbench-ckpt-v1"


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; move it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs get the usual permissions
        os.replace(tmp, path)
        for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):  # left by a writer that was killed
            stale.unlink(missing_ok=True)
    finally:
        if tmp.exists():
            tmp.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"missing file {path}") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{path} is not valid JSON ({e}); delete it and rerun") from None


def write_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """A compressed .npz whose bytes depend only on the arrays (fixed member timestamps and order)."""
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name in arrays:
                info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                with zf.open(info, "w", force_zip64=True) as fh:
                    np.lib.format.write_array(fh, np.asanyarray(arrays[name]), allow_pickle=False)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_csv(path: str | os.PathLike, frame: Any) -> None:
    """A pandas DataFrame as CSV (6 significant digits)."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")


def write_csv_rows(path: str | os.PathLike, rows: list[dict]) -> None:
    """A list of dicts as CSV, columns in first-seen order."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as fh:
            keys = list(dict.fromkeys(k for r in rows for k in r))
            w = csv.DictWriter(fh, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)


def write_figure(path: str | os.PathLike, fig: Any, dpi: int = 120) -> None:
    """Save a matplotlib figure as PNG (no timestamp in the file) and close it."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png", metadata={"Software": None})
    plt.close(fig)




def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise UserError(f"missing file {path}") from None
    except Exception as e:  # zipfile/ValueError on a corrupt archive
        raise UserError(f"{path} is not a readable .npz archive ({e}); delete it and rerun") from None


def save_checkpoint(path: str | os.PathLike, state_dict: dict, meta: dict[str, Any]) -> None:
    """Write tensors as safetensors with JSON metadata (arch, kwargs, seed, config hash, versions)."""
    import torch
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    # One metadata entry: safetensors writes several in hash-map order, which changes between runs.
    header = {"unlearnbench": json.dumps({"format": CKPT_FORMAT, "meta": meta,
                                          "versions": {"unlearnbench": __version__, "torch": torch.__version__}},
                                         sort_keys=True, default=_json_default)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=header)


def checkpoint_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata of a checkpoint written by `save_checkpoint`, read from its header alone."""
    return load_checkpoint(path, numpy=True, header_only=True)[1]


def load_checkpoint(path: str | os.PathLike, numpy: bool = False, header_only: bool = False) -> tuple[dict, dict[str, Any]]:
    """Load a checkpoint written by `save_checkpoint` (torch tensors, or NumPy arrays with
    numpy=True, which needs no torch). No code is executed while loading."""
    from safetensors import safe_open

    if numpy:
        from safetensors.numpy import load_file
    else:
        from safetensors.torch import load_file

    path = Path(path)
    if not path.exists():
        raise UserError(f"checkpoint {path} does not exist; build it with snakemake first")
    try:
        with safe_open(str(path), framework="np") as fh:
            header = fh.metadata() or {}
        tensors = {} if header_only else load_file(str(path))
    except Exception as e:
        raise UserError(
            f"checkpoint {path} is corrupt or not a safetensors file ({type(e).__name__}); delete it and rerun"
        ) from None
    try:
        record = json.loads(header["unlearnbench"])
    except (KeyError, json.JSONDecodeError):
        record = {}
    if record.get("format") != CKPT_FORMAT:
        raise UserError(f"checkpoint {path} was not written by unlearnbench (no {CKPT_FORMAT} header); "
                        "delete it and rerun, or point the config at an unlearnbench checkpoint")
    return tensors, record["meta"]
