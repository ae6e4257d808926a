"""The pipeline stages, one function each, called by the thin rule scripts in workflow/scripts/.

Every stage reads its inputs, computes, and writes its outputs atomically (a failed stage leaves
no half-written file).
"""

from __future__ import annotations

import copy
import csv
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__
from .config import config_hash
from .data import make_forget_request, make_split, prepare_dataset, to_float
from .errors import UserError
from .io import atomic_path, load_checkpoint, read_json, read_npz, save_checkpoint, write_json, write_npz
from .methods import Context, build_unlearn_data, create_method
from .metrics import compute_metrics, weight_distance
from .models import build_model
from .runtime import measure, predict_logits, resolve_device, seed_everything
from .training import train


# --------------------------------------------------------------------------- data
def run_prepare_dataset(spec: dict, data_root: str, allow_download: bool, out: str) -> None:
    arrays = prepare_dataset(spec, data_root, allow_download)
    write_npz(out, **arrays)
    print(f"prepared {spec['source']}: {len(arrays['y'])} images {arrays['x'].shape[1:]}, "
          f"{len(np.unique(arrays['y']))} classes, official test split: {bool(arrays['is_test'].any())}")


def run_make_split(data_path: str, spec: dict, out: str) -> None:
    d = read_npz(data_path)
    split = make_split(d["y"], d["is_test"], spec["val_fraction"], spec["test_fraction"], spec["split_seed"])
    write_json(out, {k: v.tolist() for k, v in split.items()})
    print("split sizes: " + ", ".join(f"{k}={len(v)}" for k, v in split.items()))


def run_make_forget_request(data_path: str, split_path: str, scenario: dict, out: str) -> None:
    d = read_npz(data_path)
    split = read_json(split_path)
    req = make_forget_request(d["y"], split, scenario, num_classes=len(d["class_names"]))
    write_json(out, {**req, "forget": req["forget"].tolist(), "retain": req["retain"].tolist(), "scenario": scenario})
    print(f"forget request {scenario}: forget={len(req['forget'])} retain={len(req['retain'])}")


# --------------------------------------------------------------------------- models
def new_model(data: dict[str, np.ndarray], model_spec: dict) -> torch.nn.Module:
    spec = dict(model_spec)
    arch = spec.pop("arch")
    return build_model(arch, in_channels=data["x"].shape[1], num_classes=len(data["class_names"]),
                       image_size=data["x"].shape[-1], mean=data["mean"].tolist(), std=data["std"].tolist(), **spec)


def model_meta(data: dict[str, np.ndarray], model_spec: dict, **extra: Any) -> dict[str, Any]:
    return {"model_spec": model_spec, "in_channels": int(data["x"].shape[1]),
            "num_classes": len(data["class_names"]), "image_size": int(data["x"].shape[-1]),
            "mean": data["mean"].tolist(), "std": data["std"].tolist(),
            "python": platform.python_version(), "unlearnbench": __version__, **extra}


def load_model(path: str | Path, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, dict]:
    """Rebuild a model from an unlearnbench checkpoint (architecture and kwargs are in its metadata)."""
    state, meta = load_checkpoint(path)
    spec = dict(meta["model_spec"])
    arch = spec.pop("arch")
    spec.pop("pretrained_path", None)  # weights come from the checkpoint
    model = build_model(arch, in_channels=meta["in_channels"], num_classes=meta["num_classes"],
                        image_size=meta["image_size"], mean=meta["mean"], std=meta["std"], **spec)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise UserError(f"checkpoint {path} does not fit model {arch!r}: {str(e).splitlines()[0]}") from None
    return model.to(device).eval(), meta


def _write_log_csv(path: str, rows: list[dict]) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as fh:
            keys = list(dict.fromkeys(k for r in rows for k in r))
            w = csv.DictWriter(fh, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)


def run_train(data_path: str, split_path: str, request_path: str | None, dataset_spec: dict, model_spec: dict,
              recipe: dict, seed: int, device: str, threads: int, out_ckpt: str, out_log: str, out_info: str) -> None:
    """Train the original model (request_path None) or the retrained gold model (retain set only)."""
    seed_everything(seed, threads)
    dev = resolve_device(device)
    data, split = read_npz(data_path), read_json(split_path)
    x, y = to_float(data["x"]), torch.from_numpy(data["y"])
    train_idx = np.asarray(split["train"])
    kind = "original"
    val_idx = np.asarray(split["val"])
    if request_path is not None:
        req = read_json(request_path)
        train_idx, kind = np.asarray(req["retain"]), "retrain"
        val_idx = val_idx[~np.isin(data["y"][val_idx], req["forget_classes"])]
    model = new_model(data, model_spec)
    t_idx, v_idx = torch.as_tensor(train_idx), torch.as_tensor(val_idx)
    with measure(dev) as usage:
        log = train(model, x[t_idx], y[t_idx], recipe, seed, dev, val=(x[v_idx], y[v_idx]), desc=kind)
    meta = model_meta(data, model_spec, kind=kind, seed=seed, recipe=recipe,
                      config_hash=config_hash(dataset_spec, model_spec, recipe, seed, request_path and read_json(request_path)["scenario"]))
    save_checkpoint(out_ckpt, model.state_dict(), meta)
    _write_log_csv(out_log, log)
    write_json(out_info, {"kind": kind, "seconds": usage.seconds, "peak_mem_mb": usage.peak_mem_mb,
                          "device": str(dev), "final": log[-1], "n_train": int(len(train_idx))})


# --------------------------------------------------------------------------- unlearning
def run_unlearn(data_path: str, split_path: str, request_path: str, original_ckpt: str, method_spec: dict,
                seed: int, device: str, threads: int, artefacts: dict[str, str], out_ckpt: str, out_info: str) -> None:
    seed_everything(seed, threads)
    dev = resolve_device(device)
    method = create_method(method_spec)
    data, split, req = read_npz(data_path), read_json(split_path), read_json(request_path)
    if req["type"] not in method.supports:
        raise UserError(f"method {method.name} does not support {req['type']} forgetting")
    access = method.access()
    x, y = to_float(data["x"]), torch.from_numpy(data["y"])
    udata = build_unlearn_data(access, x, y, req["forget"], req["retain"], split["val"],
                               num_classes=len(data["class_names"]), forget_classes=req["forget_classes"],
                               request_type=req["type"], retain_per_class=method.retain_per_class, seed=seed)
    model, meta = load_model(original_ckpt, dev)
    original = copy.deepcopy(model).eval()
    for p in original.parameters():
        p.requires_grad_(False)
    ctx = Context(device=dev, seed=seed, original=original, artefacts=artefacts,
                  log=lambda s: print(s, flush=True))
    print(f"unlearning with {method.name} (access: {access.label}) {method.hp}", flush=True)
    with measure(dev) as usage:
        model = method.unlearn(model, udata, ctx)
    meta = {**meta, "kind": "unlearned", "method": method_spec, "seed": seed}
    save_checkpoint(out_ckpt, model.state_dict(), meta)
    write_json(out_info, {"method": method.name, "hparams": method.hp, "access": access.label,
                          "seconds": usage.seconds, "peak_mem_mb": usage.peak_mem_mb, "device": str(dev),
                          "info": ctx.info})


# --------------------------------------------------------------------------- evaluation
def run_predict(ckpt: str, data_path: str, device: str, threads: int, out: str) -> None:
    """Logits of a model on every pooled sample (train, val and test)."""
    seed_everything(0, threads)
    dev = resolve_device(device)
    model, _ = load_model(ckpt, dev)
    data = read_npz(data_path)
    logits = predict_logits(model, to_float(data["x"]), dev).numpy().astype(np.float32)
    write_npz(out, logits=logits)


def run_evaluate(outputs: str, retrain_outputs: str, data_path: str, split_path: str, request_path: str,
                 ckpt: str, original_ckpt: str, retrain_ckpt: str, time_info: str | None, seed: int,
                 out_metrics: str, out_mia: str) -> None:
    data, split, req = read_npz(data_path), read_json(split_path), read_json(request_path)
    logits, r_logits = read_npz(outputs)["logits"], read_npz(retrain_outputs)["logits"]
    y = data["y"]
    metrics, flags = compute_metrics(logits, y, split, req, len(data["class_names"]), r_logits, seed=seed)
    state, _ = load_checkpoint(ckpt)
    o_state, _ = load_checkpoint(original_ckpt)
    r_state, _ = load_checkpoint(retrain_ckpt)
    model, _ = load_model(ckpt)
    params = [n for n, _ in model.named_parameters()]
    d_orig, d_retr = weight_distance(state, o_state, params), weight_distance(state, r_state, params)
    metrics["dist_original"], metrics["dist_retrain"] = d_orig["total"], d_retr["total"]
    timing = read_json(time_info) if time_info else {"seconds": 0.0, "peak_mem_mb": 0.0}
    metrics["time_s"], metrics["peak_mem_mb"] = timing["seconds"], timing["peak_mem_mb"]
    hist = flags.pop("forget_pred_hist")
    write_npz(out_mia, **{k: v.astype(np.uint8) for k, v in flags.items()}, forget_index=np.asarray(req["forget"]))
    write_json(out_metrics, {"metrics": metrics, "forget_pred_hist": hist,
                             "layer_dist_original": d_orig["layers"], "layer_dist_retrain": d_retr["layers"],
                             "n_forget": len(req["forget"]), "n_retain": len(req["retain"])})
