"""The spine's stage functions (data, training, unlearning, prediction, evaluation), one per rule,
called by the thin scripts in workflow/scripts/ (named like their rules) with the job's context
(`runtime.Job`: seed, device, threads, outputs by name) and the job's inputs and settings.

Every stage writes its outputs atomically (a failed stage leaves no half-written file). Outputs are
deterministic for a fixed config and seed on the CPU; wall time and memory go to `*.time.json`
sidecars only.
"""

from __future__ import annotations

import copy
from statistics import median
from typing import Any

import numpy as np

from .data import (RequestData, check_card, check_request, check_split, load_view, make_forget_request, make_split,
                   prepare_dataset, read_archive, to_float, view_indices)
from .errors import UserError
from .infra.lazy import torch
from .infra import wall
from .infra.sandbox import restrict_files
from .io import checkpoint_meta, load_checkpoint, read_json, read_npz, write_csv_rows, write_json, write_npz
from .keys import config_hash
from .methods import Context, UnlearnData, UnlearningMethod
from .metrics.accuracy import compute_metrics, conv_sparsity, weight_distance
from .models.checkpoint import check_fits, check_same_model, load_model, model_meta, new_model, save_model, write_outputs
from .parts.pruning import apply_mask, enforce_mask, load_mask, mask_violations, sparsity_of, train_with_mask
from .runtime import Job, measure
from .training import train


# --------------------------------------------------------------------------- data
def run_prepare_dataset(job: Job, spec: dict, data_root: str, allow_download: bool) -> None:
    arrays = prepare_dataset(spec, data_root, allow_download)
    write_npz(job.out["data"], **arrays)
    print(f"prepared {spec['source']}: {len(arrays['y'])} images {arrays['x'].shape[1:]}, "
          f"{len(np.unique(arrays['y']))} classes, official test split: {bool(arrays['is_test'].any())}")


def run_make_split(job: Job, data: str, spec: dict) -> None:

    d = read_archive(data)
    split = make_split(d["y"], d["is_test"], spec["val_fraction"], spec["test_fraction"], spec["split_seed"])
    write_json(job.out["split"], {k: v.tolist() for k, v in split.items()})
    print("split sizes: " + ", ".join(f"{k}={len(v)}" for k, v in split.items()))


def run_make_forget_request(job: Job, data: str, split: str, scenario: dict) -> None:
    """The forget/retain indices, and the request card: what every method is told (type, classes,
    sizes), without any index."""

    d = read_archive(data)
    num_classes = len(d["class_names"])
    split_d = read_json(split)
    check_split(split_d, len(d["y"]), split)
    req = make_forget_request(d["y"], split_d, scenario, num_classes=num_classes)
    write_json(job.out["request"], {**req, "forget": req["forget"].tolist(), "retain": req["retain"].tolist(), "scenario": scenario})
    write_json(job.out["card"], {"type": req["type"], "forget_classes": req["forget_classes"], "num_classes": num_classes,
                          "n_forget": len(req["forget"]), "n_retain": len(req["retain"]), "scenario": scenario})
    print(f"forget request {scenario}: forget={len(req['forget'])} retain={len(req['retain'])}")


def run_data_view(job: Job, data: str, split: str, request: str, view: str) -> None:
    """One data set a method may read, as its own file: uint8 images, labels, pooled indices, and
    whether a retain subset in fact covers the whole retain set."""
    rd = RequestData.load(data, split, request)
    idx = view_indices(view, rd)
    covers_all = view.startswith("retain") and len(idx) == len(rd.retain)
    write_npz(job.out["view"], x=rd.data["x"][idx], y=rd.y[idx], index=idx, covers_all=np.asarray(covers_all))
    print(f"data view {view}: {len(idx)} samples" + (" (the whole retain set)" if covers_all and view != "retain" else ""))


# --------------------------------------------------------------------------- training
def _train(job: Job, data: str, split: str, request: str | None, dataset_spec: dict, model_spec: dict, recipe: dict,
           replica: int = 0, mask: str | None = None, retain_fraction: float | None = None) -> None:
    seed = job.seed
    train_seed = seed + 1000 * replica  # an independent retrain: other init and batch order
    dev = job.start(train_seed)
    rd_data, split_d = read_archive(data), read_json(split)
    check_split(split_d, len(rd_data["y"]), split)
    x, y = to_float(rd_data["x"]), torch.from_numpy(rd_data["y"])
    train_idx, val_idx, kind, scenario = np.asarray(split_d["train"]), np.asarray(split_d["val"]), "original", None
    if request is not None:
        req = read_json(request)
        check_request(req, split_d, rd_data["y"], request)
        train_idx, kind, scenario = np.asarray(req["retain"]), "retrain", req["scenario"]
        val_idx = val_idx[~np.isin(rd_data["y"][val_idx], req["forget_classes"])]
        if retain_fraction is not None:  # the reference-style gold model of AIN (run_train_relearn_gold)
            train_idx, kind = gold_subset(train_idx, retain_fraction, seed), "relearn_gold"
    model = new_model(rd_data, model_spec)
    t_idx, v_idx = torch.as_tensor(train_idx), torch.as_tensor(val_idx)
    extra = {}
    with job.timed() as usage:
        if mask is None:
            log = train(model, x[t_idx], y[t_idx], recipe, train_seed, dev, val=(x[v_idx], y[v_idx]), desc=kind)
        else:  # the sparse gold model: from scratch, the sparse original's mask enforced throughout
            m, m_meta = load_mask(mask)
            apply_mask(model, m)
            log = train_with_mask(model, x[t_idx], y[t_idx], m, recipe, train_seed, dev, val=(x[v_idx], y[v_idx]), desc=kind)
            extra = {"sparsity": sparsity_of(model, m), "pruning": m_meta.get("pruning")}
        usage.extra["epoch_seconds"] = [row.pop("seconds") for row in log]
    if retain_fraction is not None:
        extra["retain_fraction"] = retain_fraction
    meta = model_meta(rd_data, model_spec, kind=kind, seed=seed, replica=replica, recipe=recipe, **extra,
                      config_hash=config_hash(dataset_spec, model_spec, recipe, seed, scenario,
                                              *([retain_fraction] if retain_fraction is not None else [])))
    save_model(job.out["ckpt"], model, meta)
    write_csv_rows(job.out["log"], log)
    write_json(job.out["info"], {"kind": kind, "seed": seed, "replica": replica, "final": log[-1], "n_train": int(len(train_idx))})
    write_outputs(model, x, dev, job.out["outputs"])


def run_train_original(job: Job, data: str, split: str, dataset_spec: dict, model_spec: dict, recipe: dict) -> None:
    _train(job, data, split, None, dataset_spec, model_spec, recipe)


def run_train_retrain(job: Job, data: str, split: str, request: str, dataset_spec: dict, model_spec: dict, recipe: dict,
                      replica: int, mask: str | None = None) -> None:
    """The gold model: same recipe, fresh initialisation, retain set only (and, for a sparse
    original, the same pruning mask)."""
    _train(job, data, split, request, dataset_spec, model_spec, recipe, replica=replica, mask=mask)


def gold_subset(retain: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """The seeded random `fraction` of the retain set a reference-style gold model trains on (not
    stratified, as the MuGAN code's random_split; at least one sample), sorted."""
    n = max(1, int(round(fraction * len(retain))))
    return np.sort(np.random.default_rng([seed, 21]).permutation(np.asarray(retain))[:n])


def run_train_relearn_gold(job: Job, data: str, split: str, request: str, dataset_spec: dict, model_spec: dict,
                           recipe: dict, gold: dict, mask: str | None = None) -> None:
    """AIN's reference-style gold model (relearn setting `gold: {epochs, retain_fraction}`): the
    original's recipe run for `gold.epochs` epochs, from scratch, on a seeded random
    `gold.retain_fraction` of the retain set (the MuGAN code: 15 epochs on 95 % of D_r). It is used
    only as the denominator of AIN, never as a table row."""
    epochs, fraction = int(gold["epochs"]), float(gold["retain_fraction"])
    if epochs < 1 or not 0 < fraction <= 1:
        raise UserError(f"relearn gold model: epochs must be >= 1 and retain_fraction in (0, 1], got {gold}")
    _train(job, data, split, request, dataset_spec, model_spec, {**recipe, "epochs": epochs}, mask=mask,
           retain_fraction=fraction)


# --------------------------------------------------------------------------- unlearning
def split_timings(obj, path: str = ""):
    """(obj without its wall-time entries, {dotted path: seconds}): keys named `seconds` or ending in
    `_seconds` (e.g. a method's per-epoch log) differ between reruns, so they leave the info file."""
    found: dict = {}
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            key = f"{path}.{k}" if path else str(k)
            if k == "seconds" or str(k).endswith("_seconds"):
                found[key] = v
            else:
                out[k], sub = split_timings(v, key)
                found.update(sub)
        return out, found
    if isinstance(obj, list):
        out = []
        for i, v in enumerate(obj):
            item, sub = split_timings(v, f"{path}[{i}]")
            out.append(item)
            found.update(sub)
        return out, found
    return obj, found


def run_unlearn(job: Job, method: UnlearningMethod, method_spec: dict, original: str, card: str, views: dict[str, str],
                artefacts: dict[str, Any], protected: list[str] | None = None, mask: str | None = None, repeats: int = 0,
                tuned: dict | None = None, model_spec: dict | None = None) -> None:
    """Apply one method instance (`method`, made from its config block `method_spec`, which the model's
    metadata records) to the original model. The job reads only the files given here:
    the method's declared data views and artefacts, the original model and the request card.
    `tuned`: where a tuned instance's values come from (its lock entry), recorded in unlearn.json.
    `repeats` k >= 1 (rule time_unlearn): run the unlearning k times from the same state and write
    only the timing sidecar, with every repeat and their median (the checkpoint is not written).
    `model_spec`: the config's model entry; the original must hold it (models/checkpoint.check_model_entry)."""

    seed, dev = job.seed, job.start()
    c = read_json(card)
    check_card(c, card)
    if c["type"] not in method.supports:
        raise UserError(f"method {method.name} does not support {c['type']} forgetting")
    access = method.access()
    expected = set(access.views(seed))
    if set(views) != expected:
        raise UserError(f"unlearn job for {method.name} got data views {sorted(views)}, its access declares {sorted(expected)}")
    sets, label = {}, access.label
    for role, path in views.items():
        x, y, covers_all = load_view(path)
        sets[role] = (x, y)
        if role == "retain" and access.retain == "subset" and covers_all:
            label = _all_retain_label(access)  # the subset asked for more than each class holds
    if wall.state()["enforced"] is False:  # a job whose OS wall could not go up (wall.py): say so
        label += " (declared, not enforced)"
    udata = UnlearnData(access, c["num_classes"], c["forget_classes"], c["type"], sets=sets, label=label)
    model, meta = load_model(original, dev, expect=model_spec)
    check_fits(original, meta, card, c, {views[r]: s for r, s in sets.items()})  # before the method runs
    frozen = copy.deepcopy(model).eval()
    for p in frozen.parameters():
        p.requires_grad_(False)
    ctx = Context(device=dev, seed=seed, original=frozen, artefacts=artefacts, log=lambda s: print(s, flush=True),
                  input_shape=(meta["in_channels"], meta["image_size"], meta["image_size"]))
    print(f"unlearning with {method.name} (access: {label}) {method.hp}", flush=True)
    allowed = [original, card, *views.values(), *[p for v in artefacts.values() for p in ([v] if isinstance(v, str) else v)]]
    pruned = _load_pruning_mask(mask)
    if repeats:
        times = []
        for _ in range(repeats):  # every repeat from the same state and seed
            job.start()
            trial, tctx = copy.deepcopy(model), copy.deepcopy(ctx)
            with restrict_files(allowed, [job.out["time"]], protected or []):
                with measure(dev) as usage:
                    unlearn_keeping_mask(method, trial, udata, tctx, pruned)
            times.append(usage.seconds)
            print(f"repeat {len(times)}/{repeats}: {usage.seconds:.3f} s", flush=True)
        write_json(job.out["time"], usage.record(repeats=times, seconds_median=median(times)))
        return
    with restrict_files(allowed, list(job.out.values()), protected or []):
        with measure(dev) as usage:
            model = unlearn_keeping_mask(method, model, udata, ctx, pruned)
    meta = {**meta, "kind": "unlearned", "method": method_spec, "seed": seed, "original_config_hash": meta.get("config_hash"),
            "config_hash": config_hash(meta.get("config_hash"), method_spec, seed)}  # the method's block is hashed too
    record = {"method": method.name, "hparams": method.hp, "access": label, "seed": seed, "info": ctx.info,
              "artefact_files": {k: v for k, v in sorted(artefacts.items())}, "tuned": tuned}
    if pruned is not None:
        record["sparsity"] = meta["sparsity"] = sparsity_of(model, pruned)
    save_model(job.out["ckpt"], model, meta)
    record["info"], info_seconds = split_timings(record["info"])  # wall times belong in the sidecar
    write_json(job.out["info"], record)
    write_json(job.out["time"], usage.record(**({"info_seconds": info_seconds} if info_seconds else {})))


def _load_pruning_mask(path: str | None):
    return None if path is None else load_mask(path)[0]


def unlearn_keeping_mask(method, model, data, ctx, mask=None):
    """`method.unlearn`, with the pruned weights of a sparse original held at zero throughout (hooks
    on gradients and forward passes, see parts/pruning.enforce_mask) and checked afterwards."""
    if mask is None:
        return method.unlearn(model, data, ctx)

    mask = {k: v.to(ctx.device) for k, v in mask.items()}
    with enforce_mask(model, mask):
        out = method.unlearn(model, data, ctx)
    if out is not model:  # a method that returned a new module (e.g. GKT's student) gets the mask too
        apply_mask(out, mask)
    bad = mask_violations(out, mask)
    if bad:
        raise UserError(f"method {method.name}: {bad} pruned weights became non-zero during unlearning")
    return out


def _all_retain_label(access) -> str:
    """The access label when a declared retain subset covers the whole retain set."""
    parts = (["forget"] if access.forget else []) + ["retain (all)"] + (["val"] if access.val else [])
    return "+".join(parts)


# --------------------------------------------------------------------------- evaluation
def run_evaluate(job: Job, ckpt: str, retrain_outputs: str, data: str, split: str, request: str, original: str,
                 retrain: str, unlearn_info: str, access: str) -> None:
    """An unlearned run: its logits on every sample, then its metrics (see run_evaluate_reference)."""
    dev = job.start(0)
    model, meta = load_model(ckpt, dev)
    check_same_model([(original, checkpoint_meta(original)), (retrain, checkpoint_meta(retrain)), (ckpt, meta)])
    write_outputs(model, to_float(read_npz(data)["x"]), dev, job.out["outputs"])
    run_evaluate_reference(job, job.out["outputs"], retrain_outputs, data, split, request, ckpt, original, retrain,
                           unlearn_info, access)


def validation_counts(rd: RequestData) -> dict[str, int]:
    """How many validation samples the tuning objective's accuracies average (its resolution)."""
    val = np.asarray(rd.split["val"])
    forgotten = np.isin(rd.y[val], list(rd.request["forget_classes"]))
    return {"n_val": int((~forgotten).sum()), "n_val_forget": int(forgotten.sum())}


def run_evaluate_reference(job: Job, outputs: str, retrain_outputs: str, data: str, split: str, request: str,
                           ckpt: str, original: str, retrain: str, unlearn_info: str | None, access: str) -> None:
    """Accuracies, membership-inference attacks, divergences and weight distances of one run from
    its logits (no model is run)."""
    seed = job.seed
    rd = RequestData.load(data, split, request)
    logits, r_logits = read_npz(outputs)["logits"], read_npz(retrain_outputs)["logits"]
    metrics, flags = compute_metrics(logits, rd.y, rd.split, rd.request, rd.num_classes, r_logits, seed=seed)
    state, meta = load_checkpoint(ckpt, numpy=True)
    o_state, o_meta = load_checkpoint(original, numpy=True)
    r_state, r_meta = load_checkpoint(retrain, numpy=True)
    check_same_model([(original, o_meta), (retrain, r_meta), (ckpt, meta)], [o_state, r_state, state])
    params = meta["parameters"]
    d_orig, d_retr = weight_distance(state, o_state, params), weight_distance(state, r_state, params)
    metrics["dist_original"], metrics["dist_retrain"] = d_orig["total"], d_retr["total"]
    metrics["sparsity"] = conv_sparsity(state)
    hist = flags.pop("forget_pred_hist")
    write_npz(job.out["mia"], **flags, forget_index=rd.forget)
    if unlearn_info:
        access = read_json(unlearn_info)["access"]  # what the job actually read (e.g. "retain (all)")
    write_json(job.out["metrics"], {"metrics": metrics, "access": access, "forget_pred_hist": hist,
                             "layer_dist_original": d_orig["layers"], "layer_dist_retrain": d_retr["layers"],
                             "n_forget": len(rd.forget), "n_retain": len(rd.retain), **validation_counts(rd)})
