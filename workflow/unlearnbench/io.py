"""Safe, atomic artefact I/O: JSON, NumPy archives and checkpoints (safetensors, no pickle)."""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

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
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


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
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)


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

    from . import __version__

    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    header = {
        "format": CKPT_FORMAT,
        "meta": json.dumps(meta, sort_keys=True, default=_json_default),
        "versions": json.dumps({"unlearnbench": __version__, "torch": torch.__version__}),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=header)


def load_checkpoint(path: str | os.PathLike) -> tuple[dict, dict[str, Any]]:
    """Load a checkpoint written by `save_checkpoint`. No code is executed while loading."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.exists():
        raise UserError(f"checkpoint {path} does not exist; build it with snakemake first")
    try:
        with safe_open(str(path), framework="pt") as fh:
            header = fh.metadata() or {}
        tensors = load_file(str(path))
    except Exception as e:
        raise UserError(
            f"checkpoint {path} is corrupt or not a safetensors file ({type(e).__name__}); delete it and rerun"
        ) from None
    if header.get("format") != CKPT_FORMAT:
        raise UserError(
            f"checkpoint {path} was not written by unlearnbench (format {header.get('format')!r}); "
            "point the config at an unlearnbench checkpoint"
        )
    return tensors, json.loads(header["meta"])
