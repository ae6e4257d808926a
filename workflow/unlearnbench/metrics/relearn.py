"""Relearn time (RT) and the Anamnesis Index (AIN), always measured on a copy of the model.

Two named definitions (both from the UNSIR authors):
- `relearn_epochs` (UNSIR paper, Sec. V-A): epochs until the forget-set accuracy reaches the
  original model's (threshold 1.0 x), training on `samples_per_epoch` (500) random samples of the
  full training set D_c each epoch; capped at `max_epochs` (100; the paper reports "> 100").
- `relearn_steps` (the authors' later zero-shot / bad-teacher code): optimiser steps, Adam 1e-3,
  batch 256 over the full training set, until the forget accuracy reaches 95 % of the original's,
  capped at 10 epochs.
A run that never reaches the threshold gets the cap (epochs: max_epochs; steps: the number of steps
in max_epochs epochs) and `*_reached = 0`: read a value at the cap as ">= cap".
The paper does not name the optimiser of its epoch definition: we use the same Adam 1e-3, batch
256, as the step definition (choice). BatchNorm trains normally (train mode) while relearning.
Accuracy is measured on the forget set itself (`eval_on: forget_train`, default) or on held-out
samples of the forgotten classes: their test samples (`forget_test`) or their validation samples
(`forget_val`). The authors' later code measures on held-out samples of the forget class: the test
set in the Bad Teacher / zero-shot notebook (ayushkumartarun/zero-shot-unlearning), the validation
split (5 % of the training set) in the MuGAN thesis' code (DataSystemsGroupUT/zero-shot-machine-
unlearning, utils.ain).
AIN = relearn time of the unlearned model / relearn time of the gold model (same definition, same
seed). The gold model (`gold`) is the retrained model of the table (`retrain`, default: the
original's recipe on the whole retain set; its AIN is 1 by construction), or a reference-style one,
`gold: {epochs: E, retain_fraction: f}`: the original's recipe for E epochs on a seeded random
fraction f of the retain set (the MuGAN code's gold: 15 epochs, Adam 1e-3, batch 64, on 95 % of D_r;
rules train_relearn_gold and relearn_gold).

Reference-code options (issue #21), each off by default, so that a default run is what it was:
- `steps_check_at_start: false`: the step definition checks the accuracy only after each step, as
  the reference `relearn_time` does, so a relearn time is >= 1 step, never 0 (default true: checked
  before the first step too, so a model already at the threshold needs 0 steps and its AIN is 0).
  The epoch definition is unchanged.
- `definitions: [epochs, steps]` (default both): the definitions measured. A study whose tables read
  only one (the MuGAN thesis: AIN in steps) names it and skips the other's cost: the epoch definition
  runs up to 100 epochs of 500 samples per model, most of a relearn job on a real dataset. The files
  then hold the named definitions' keys only; a study reporting another is refused at start-up (config.py).
- `eval_max_samples: N` (default none: every sample): the accuracy (and the original's, hence the threshold)
  is measured on N samples of the evaluation set drawn once per seed and request, the same for every model
  of that seed, its gold included. Evaluating ~5400 forget images after each of 100 epochs is most of an
  epoch-definition job on a real dataset; at N = 1000 one sample is 0.1 point of accuracy.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..data import RequestData
from ..errors import UserError
from ..io import write_json
from ..models.checkpoint import load_model
from ..runtime import Job, generator, iterate_batches
from ..training import accuracy, make_optimizer
from .cost import DEFINITIONS

DEFAULTS: dict[str, Any] = {
    "epochs_samples_per_epoch": 500, "epochs_max": 100, "epochs_threshold": 1.0,
    "steps_max_epochs": 10, "steps_threshold": 0.95, "steps_eval_every": 1,
    "lr": 1e-3, "batch_size": 256, "optimizer": "adam",
    "eval_on": "forget_train",  # or "forget_test" / "forget_val": held-out samples of the forgotten classes
}
# Options added later (issue #21): at these values a run is what it was before they existed, and the
# settings recorded in relearn_raw.json name them only where they differ (see `recorded`).
OPTIONS: dict[str, Any] = {"steps_check_at_start": True, "gold": "retrain", "definitions": list(DEFINITIONS),
                           "eval_max_samples": None}
EVAL_ON = ("forget_train", "forget_test", "forget_val")


def settings(user: dict | None) -> dict[str, Any]:
    user = dict(user or {})
    known = {**DEFAULTS, **OPTIONS}
    unknown = sorted(set(user) - set(known))
    if unknown:
        raise UserError(f"relearn: unknown setting {unknown[0]!r}; known: {', '.join(sorted(known))}")
    s = {**known, **user}
    for k in ("epochs_samples_per_epoch", "epochs_max", "steps_max_epochs", "steps_eval_every", "batch_size"):
        if int(s[k]) < 1:
            raise UserError(f"relearn: {k} must be >= 1, got {s[k]!r}")
    if s["eval_on"] not in EVAL_ON:
        raise UserError(f"relearn: eval_on must be one of {', '.join(EVAL_ON)}, got {s['eval_on']!r}")
    if not isinstance(s["steps_check_at_start"], bool):
        raise UserError(f"relearn: steps_check_at_start must be true or false, got {s['steps_check_at_start']!r}")
    d = s["definitions"]
    if not isinstance(d, list) or not d or len(set(d)) != len(d) or not set(d) <= set(DEFINITIONS):
        raise UserError(f"relearn: definitions must be a non-empty list of distinct names from "
                        f"{', '.join(DEFINITIONS)}, got {d!r}")
    s["definitions"] = [x for x in DEFINITIONS if x in d]  # one canonical order
    n = s["eval_max_samples"]
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise UserError(f"relearn: eval_max_samples must be an integer >= 1 (or left out: every sample), got {n!r}")
    gold_spec(s)
    if not (0 < s["epochs_threshold"] <= 1 and 0 < s["steps_threshold"] <= 1):
        raise UserError("relearn: thresholds are fractions of the original's forget accuracy in (0, 1]")
    return s


def gold_spec(s: dict) -> dict | None:
    """The reference-style gold model's recipe {epochs, retain_fraction}, or None for the retrained model."""
    g = s.get("gold", "retrain")
    if g == "retrain":
        return None
    if not isinstance(g, dict) or set(g) != {"epochs", "retain_fraction"}:
        raise UserError(f"relearn: gold must be 'retrain' or {{epochs: E, retain_fraction: f}}, got {g!r}")
    if isinstance(g["epochs"], bool) or not isinstance(g["epochs"], int) or g["epochs"] < 1:
        raise UserError(f"relearn: gold.epochs must be an integer >= 1, got {g['epochs']!r}")
    if not 0 < float(g["retain_fraction"]) <= 1:
        raise UserError(f"relearn: gold.retain_fraction must be in (0, 1], got {g['retain_fraction']!r}")
    return {"epochs": int(g["epochs"]), "retain_fraction": float(g["retain_fraction"])}


def recorded(s: dict) -> dict:
    """The settings written beside a result: every DEFAULTS key, and the OPTIONS that differ from theirs."""
    return {k: v for k, v in s.items() if k in DEFAULTS or v != OPTIONS.get(k)}


def _step(model, opt, xb, yb) -> None:
    model.train()
    loss = F.cross_entropy(model(xb), yb)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def relearn_epochs(model, x_train, y_train, x_forget, y_forget, target: float, s: dict, seed: int, device) -> dict:
    """Paper definition: epochs of `samples_per_epoch` random training samples until acc >= target."""
    model = copy.deepcopy(model).to(device)
    opt = make_optimizer(model.parameters(), s["optimizer"], s["lr"], 0.9, 0.0)
    gen = generator(seed)
    curve = [accuracy(model, x_forget, y_forget, device)]
    n = int(s["epochs_samples_per_epoch"])
    for epoch in range(1, int(s["epochs_max"]) + 1):
        if curve[-1] >= target:
            break
        sub = torch.randperm(len(y_train), generator=gen)[:n]
        for idx in iterate_batches(len(sub), int(s["batch_size"]), gen):
            b = sub[idx]
            _step(model, opt, x_train[b].to(device), y_train[b].to(device))
        curve.append(accuracy(model, x_forget, y_forget, device))
    reached = curve[-1] >= target
    return {"relearn_epochs": float(len(curve) - 1), "relearn_epochs_reached": float(reached),
            "epochs_curve": curve, "epochs_target": target}


def relearn_steps(model, x_train, y_train, x_forget, y_forget, target: float, s: dict, seed: int, device) -> dict:
    """Later-code definition: optimiser steps over the full training set until acc >= target.

    `steps_check_at_start` false: the reference's order (step, then check), so the result is >= 1 step;
    the curve still starts with the accuracy before any step (step 0), which then stops nothing."""
    model = copy.deepcopy(model).to(device)
    opt = make_optimizer(model.parameters(), s["optimizer"], s["lr"], 0.9, 0.0)
    gen = generator(seed + 1)
    acc = accuracy(model, x_forget, y_forget, device)
    curve, steps = [(0, acc)], 0
    per_epoch = math.ceil(len(y_train) / int(s["batch_size"]))
    cap = per_epoch * int(s["steps_max_epochs"])
    x_dev, y_dev = x_train.to(device), y_train.to(device)
    done = bool(s.get("steps_check_at_start", True)) and acc >= target
    for _ in range(int(s["steps_max_epochs"])):
        if done:
            break
        for idx in iterate_batches(len(y_train), int(s["batch_size"]), gen):
            idx = idx.to(device)
            _step(model, opt, x_dev[idx], y_dev[idx])
            steps += 1
            if steps % int(s["steps_eval_every"]) == 0 or steps == cap:
                acc = accuracy(model, x_forget, y_forget, device)
                curve.append((steps, acc))
                if acc >= target:
                    done = True
                    break
    return {"relearn_steps": float(steps if done else cap), "relearn_steps_reached": float(done),
            "steps_curve": curve, "steps_target": target, "steps_cap": cap}


def measure_relearn(model, original, x_train, y_train, x_forget, y_forget, s: dict, seed: int, device) -> dict:
    """The definitions named in s["definitions"] for one model; thresholds relative to the original's forget accuracy."""
    if len(y_forget) == 0:
        raise UserError("relearn: the forget set is empty")
    a0 = accuracy(original, x_forget, y_forget, device)
    out = {"original_forget_acc": a0}
    if "epochs" in s["definitions"]:
        out.update(relearn_epochs(model, x_train, y_train, x_forget, y_forget, s["epochs_threshold"] * a0, s, seed, device))
    if "steps" in s["definitions"]:
        out.update(relearn_steps(model, x_train, y_train, x_forget, y_forget, s["steps_threshold"] * a0, s, seed, device))
    return out


# --------------------------------------------------------------------------- pipeline stage
def eval_indices(rd: RequestData, eval_on: str) -> np.ndarray:
    """Pooled indices the relearn accuracy is measured on: the forget training samples, or the test /
    validation samples of the forgotten classes (held out: never trained on by any model here)."""
    if eval_on == "forget_train":
        return rd.forget
    if not rd.forget_classes:
        raise UserError(f"relearn: eval_on {eval_on} needs a class forget request")
    if eval_on == "forget_test":
        return rd.test_forget
    idx = rd.val[np.isin(rd.y[rd.val], rd.forget_classes)]
    if len(idx) == 0:
        raise UserError("relearn: eval_on forget_val, but the validation split holds no sample of the forgotten "
                        "classes (raise the dataset's val_fraction)")
    return idx


def eval_subsample(idx: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    """At most n of the pooled indices, drawn by the run's seed (the same subset for every model of a seed)."""
    if n is None or len(idx) <= n:
        return idx
    return np.sort(np.random.default_rng(seed).choice(idx, size=n, replace=False))


def run_relearn_measure(job: Job, ckpt: str, original: str, data: str, split: str, request: str,
                        settings_: dict | None) -> None:
    """Rule relearn_measure: the relearn times of one run's model (on copies)."""

    s = settings(settings_)
    dev = job.start()
    seed = job.seed
    rd = RequestData.load(data, split, request)
    f_idx = eval_subsample(eval_indices(rd, s["eval_on"]), s["eval_max_samples"], seed)
    x_train, y_train = rd.tensors(rd.train)  # D_c: forget and retain training samples
    x_f, y_f = rd.tensors(f_idx)
    model, _ = load_model(ckpt, dev)
    orig, _ = load_model(original, dev)
    res = measure_relearn(model, orig, x_train, y_train, x_f, y_f, s, seed, dev)
    res.update(settings=recorded(s))
    write_json(job.out["raw"], res)
    times = ", ".join(f"{res[f'relearn_{u}']:.0f} {u} (reached={bool(res[f'relearn_{u}_reached'])})" for u in s["definitions"])
    print(f"relearn: {times}; original forget acc {res['original_forget_acc']:.2f}", flush=True)
