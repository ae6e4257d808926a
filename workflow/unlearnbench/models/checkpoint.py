"""Models to and from checkpoint files: build a model for a dataset archive, describe it, rebuild it
from an unlearnbench checkpoint (architecture and arguments are in the checkpoint's metadata)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..io import load_checkpoint, save_checkpoint, write_npz
from ..runtime import predict_logits
from . import build_model


def new_model(data: dict[str, np.ndarray], model_spec: dict):
    spec = dict(model_spec)
    arch = spec.pop("arch")
    return build_model(arch, in_channels=data["x"].shape[1], num_classes=len(data["class_names"]),
                       image_size=data["x"].shape[-1], mean=data["mean"].tolist(), std=data["std"].tolist(), **spec)


def model_meta(data: dict[str, np.ndarray], model_spec: dict, **extra: Any) -> dict[str, Any]:
    return {"model_spec": model_spec, "in_channels": int(data["x"].shape[1]),
            "num_classes": len(data["class_names"]), "image_size": int(data["x"].shape[-1]),
            "mean": data["mean"].tolist(), "std": data["std"].tolist(), **extra}


def model_from_meta(meta: dict[str, Any]):
    """A freshly initialised model of the architecture a checkpoint's metadata describes."""
    spec = dict(meta["model_spec"])
    arch = spec.pop("arch")
    spec.pop("pretrained_path", None)  # weights come from the checkpoint
    return build_model(arch, in_channels=meta["in_channels"], num_classes=meta["num_classes"],
                       image_size=meta["image_size"], mean=meta["mean"], std=meta["std"], **spec)


def load_model(path: str | Path, device: Any = "cpu") -> tuple[Any, dict]:
    """Rebuild a model from an unlearnbench checkpoint; eval mode, on `device`."""
    state, meta = load_checkpoint(path)
    if "model_spec" not in meta:
        raise UserError(f"{path} is an unlearnbench file of kind {meta.get('kind')!r}, not a model checkpoint")
    model = model_from_meta(meta)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise UserError(f"checkpoint {path} does not fit model {meta['model_spec']['arch']!r}: "
                        f"{str(e).splitlines()[0]}") from None
    return model.to(device).eval(), meta


def save_model(path: str | Path, model: Any, meta: dict[str, Any]) -> None:
    """Save a model's state with its metadata; the parameter names (as opposed to buffers) are
    recorded so that later stages compare weights without rebuilding the model."""
    save_checkpoint(path, model.state_dict(), {**meta, "parameters": [n for n, _ in model.named_parameters()]})


def write_outputs(model, x, dev, out_outputs: str) -> None:
    """A model's logits on every pooled sample (train, val and test): what evaluation reads."""

    write_npz(out_outputs, logits=predict_logits(model, x, dev).numpy().astype(np.float32))
