"""Models to and from checkpoint files: build a model for a dataset archive, describe it, rebuild it
from an unlearnbench checkpoint (architecture and arguments are in the checkpoint's metadata)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..data import check_view
from ..errors import UserError
from ..io import load_checkpoint, save_checkpoint, write_npz
from ..runtime import predict_logits
from . import build_model
from ._registry import list_models, model_defaults


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


def _arguments(spec: dict) -> dict:
    """A model spec with every constructor argument (defaults filled in), without pretrained_path
    (weights come from the checkpoint). Torch-free."""
    defaults = model_defaults(spec["arch"]) if spec.get("arch") in list_models() else {}
    return {k: v for k, v in {**defaults, **spec}.items() if k != "pretrained_path"}


def check_model_entry(path: str | Path, meta: dict, expect: dict) -> None:
    """The checkpoint holds the model a config entry builds (architecture and arguments: width,
    depth, ...); its tensors fit its metadata (load_model checks the shapes)."""
    got, want = _arguments(meta["model_spec"]), _arguments(expect)
    if got.get("arch") != want.get("arch"):
        raise UserError(f"checkpoint {path} holds a {got.get('arch')} model, but the config's model is a "
                        f"{want.get('arch')} {_show(want)}; delete it and rerun (or fix the config's models entry)")
    diff = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
    if diff:
        raise UserError(f"checkpoint {path} holds a {got['arch']} with "
                        f"{', '.join(f'{k}={got.get(k)!r}' for k in diff)}, but the config's model has "
                        f"{', '.join(f'{k}={want.get(k)!r}' for k in diff)}; delete it and rerun (or fix the config's models entry)")


def _show(spec: dict) -> str:
    return "(" + ", ".join(f"{k}={v!r}" for k, v in sorted(spec.items()) if k != "arch") + ")"


def check_same_model(paths_metas: list[tuple[str, dict]], states: list[dict] | None = None) -> None:
    """Checkpoints compared with each other (an unlearned model, its original, the retrained gold model)
    are one architecture: the same model spec and input/output sizes, and (given the states) the same
    parameter names and shapes."""
    (p0, m0), rest = paths_metas[0], paths_metas[1:]
    keys = ("in_channels", "num_classes", "image_size")
    for p, m in rest:
        a, b = _arguments(m0["model_spec"]), _arguments(m["model_spec"])
        if a != b or any(m0.get(k) != m.get(k) for k in keys):
            what = lambda s, mm: f"{s.get('arch')} {_show(s)} for {mm.get('in_channels')}x{mm.get('image_size')}px, " \
                                 f"{mm.get('num_classes')} classes"
            raise UserError(f"checkpoints {p0} ({what(a, m0)}) and {p} ({what(b, m)}) are not the same model; "
                            "delete the one that does not match the config's models entry and rerun")
    if states:
        s0 = states[0]
        for (p, _), s in zip(rest, states[1:]):
            for k in m0.get("parameters", []):
                if k not in s0:
                    raise UserError(f"checkpoint {p0} lacks its parameter {k}; delete it and rerun")
                if k not in s or tuple(s[k].shape) != tuple(s0[k].shape):
                    have = list(s[k].shape) if k in s else "no such tensor"
                    raise UserError(f"checkpoint {p} does not fit {p0}: parameter {k} is {have}, not "
                                    f"{list(s0[k].shape)}; delete it and rerun")


def check_fits(original: str | Path, meta: dict, card_path: str, card: dict, views: dict[str, tuple[Any, Any]]) -> None:
    """An unlearning job's inputs fit its original model: the request card's class count is the
    model's, every data view ({path: (x, y)}) holds images of the model's input shape and its labels."""
    if card["num_classes"] != meta["num_classes"]:
        raise UserError(f"{card_path} is a request for {card['num_classes']} classes, but the model {original} has "
                        f"{meta['num_classes']}; delete the wrong file and rerun")
    shape = (meta["in_channels"], meta["image_size"], meta["image_size"])
    for path, (x, y) in views.items():
        check_view(path, x, y, shape, meta["num_classes"], str(original))


def load_model(path: str | Path, device: Any = "cpu", expect: dict | None = None) -> tuple[Any, dict]:
    """Rebuild a model from an unlearnbench checkpoint; eval mode, on `device`. `expect`: the config's
    model entry ({arch, arguments}) the checkpoint must hold (check_model_entry)."""
    state, meta = load_checkpoint(path)
    if "model_spec" not in meta:
        raise UserError(f"{path} is an unlearnbench file of kind {meta.get('kind')!r}, not a model checkpoint")
    if expect is not None:
        check_model_entry(path, meta, expect)
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
