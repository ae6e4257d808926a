"""Selective parameter suppression (SPS, UISPS paper 004, Sec. IV-C, Eqs 6-12, 15; Algorithm 1
lines 16-22), plus a generic way to restrict any method's updates to a parameter mask (Table VIII).

Importance (Eqs 8-10): the diagonal of the empirical Fisher,
    gamma_i = 1/N sum_n (d ln p(y_n | x_n, theta) / d theta_i)^2,
with per-sample gradients (torch.func) and the model in eval mode, computed once on the synthetic
forget samples D_g (label = the class each was synthesised for) and once on a small retain portion
D'_r (true labels). fisher_kind "true" uses the model's predictive distribution instead of the
label (E_{y~p(y|x)}, parts/fisher_diag.diag_fisher; not the paper's Eq. 9). Every parameter tensor
(weights, biases, BN affine) counts; BN running statistics are buffers, not parameters.

Normalisation (Eq. 11): min-max over the whole parameter vector theta (one min and one max over
every entry of every tensor: "global", the paper's reading); "layer" (per tensor) is an option.
Raw Fisher values are stored in the artefact, so normalisation and alpha are chosen at unlearning
time without recomputing.

Selection (Eq. 12, Algorithm 1 line 21): theta_s, the *suppressed* set, holds the entries with
    gamma^r_hat > alpha * gamma^g_hat
(important to the retained data, unimportant to the forgotten data); "during the unlearning process,
these parameters will not be updated" (text after Eq. 12 and Eq. 15). Everything else trains. A tie
(gamma^r_hat == alpha * gamma^g_hat, e.g. both 0) is covered by neither case of Eq. 12; it trains
(choice). Smaller alpha freezes more, which matches Tables X-XI (alpha 0.5 forgets least).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import numpy as np

from ...data import to_float
from ...errors import UserError
from ...infra.lazy import F, nn, torch
from ...io import load_checkpoint, read_npz, save_checkpoint, write_json
from ...parts.inversion import load_inversion
from ...runtime import Job

# The hyperparameters that determine the importance artefact (besides the inversion's).
IMPORTANCE_KEYS = ("fisher_kind", "fisher_retain_fraction")
FISHER_KINDS = ("empirical", "true")
NORM_SCOPES = ("global", "layer")
IMPORTANCE_KIND = "uisps_importance"


# --------------------------------------------------------------------------- importance (Eqs 8-10)
def empirical_fisher(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int,
                     device: torch.device) -> dict[str, torch.Tensor]:
    """Eq. 9: 1/N sum_n g_n^2 with g_n = d ln p(y_n | x_n) / d theta, per-sample gradients, eval mode."""
    from torch.func import functional_call, grad, vmap

    was_training = model.training
    model.eval()
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}

    def nll(p, xi, yi):  # -ln p(y|x): its square gradient is that of ln p
        return F.cross_entropy(functional_call(model, (p, buffers), (xi.unsqueeze(0),)), yi.unsqueeze(0))

    per_sample = vmap(grad(nll), in_dims=(None, 0, 0))
    acc = {k: torch.zeros_like(v) for k, v in params.items()}
    for i in range(0, len(x), batch_size):
        g = per_sample(params, x[i:i + batch_size].to(device), y[i:i + batch_size].to(device))
        for k in acc:
            acc[k] += g[k].pow(2).sum(0)
    model.train(was_training)
    return {k: (v / max(len(x), 1)).cpu() for k, v in acc.items()}


def fisher_importance(model: nn.Module, x: torch.Tensor, y: torch.Tensor, kind: str, device: torch.device,
                      batch_size: int = 32) -> dict[str, torch.Tensor]:
    """Diagonal Fisher of `model` on (x, y): "empirical" (Eq. 9, with the labels) or "true"."""
    if len(x) == 0:
        raise UserError("uisps importance: no samples to compute the Fisher diagonal on")
    if kind == "empirical":
        return empirical_fisher(model, x, y, batch_size, device)
    if kind == "true":
        from ...parts.fisher_diag import diag_fisher

        return {k: v.cpu() for k, v in diag_fisher(model, x, batch_size, device).items()}
    raise UserError(f"uisps: fisher_kind must be one of {', '.join(FISHER_KINDS)}, got {kind!r}")


# --------------------------------------------------------------------------- normalisation + selection
def normalise(imp: dict[str, torch.Tensor], scope: str = "global") -> dict[str, torch.Tensor]:
    """Eq. 11: (gamma - min) / (max - min). "global": min/max over all entries of all tensors;
    "layer": per tensor. A constant range maps to 0 (nothing is then important)."""
    if scope == "global":
        lo = min(float(v.min()) for v in imp.values())
        hi = max(float(v.max()) for v in imp.values())
        rng = {k: (lo, hi) for k in imp}
    elif scope == "layer":
        rng = {k: (float(v.min()), float(v.max())) for k, v in imp.items()}
    else:
        raise UserError(f"uisps: norm_scope must be one of {', '.join(NORM_SCOPES)}, got {scope!r}")
    out = {}
    for k, v in imp.items():
        lo, hi = rng[k]
        v = v.double()
        out[k] = (v - lo) / (hi - lo) if hi > lo else torch.zeros_like(v)
    return out


def select_parameters(imp_forget: dict[str, torch.Tensor], imp_retain: dict[str, torch.Tensor], alpha: float,
                      scope: str = "global") -> dict[str, torch.Tensor]:
    """Eqs 11-12: normalise both importances, then the suppressed set theta_s = entries with
    gamma^r_hat > alpha * gamma^g_hat. Returns {name: bool tensor, True = suppressed (frozen)}."""
    if set(imp_forget) != set(imp_retain):
        diff = sorted(set(imp_forget) ^ set(imp_retain))
        raise UserError(f"uisps: forget and retain importance cover different parameters (e.g. {diff[0]!r})")
    if alpha < 0:
        raise UserError(f"uisps: alpha must be >= 0, got {alpha}")
    g, r = normalise(imp_forget, scope), normalise(imp_retain, scope)
    out = {}
    for k in imp_forget:
        if g[k].shape != r[k].shape:
            raise UserError(f"uisps: importance shapes of {k!r} differ ({tuple(g[k].shape)} vs {tuple(r[k].shape)})")
        out[k] = r[k] > alpha * g[k]
    return out


def mask_summary(frozen: dict[str, torch.Tensor]) -> dict:
    """Frozen fraction overall and per parameter tensor (for the run record)."""
    total = sum(m.numel() for m in frozen.values())
    n = sum(int(m.sum()) for m in frozen.values())
    return {"frozen_fraction": n / max(total, 1), "n_frozen": n, "n_params": total,
            "frozen_per_tensor": {k: float(m.float().mean()) for k, m in frozen.items()}}


# --------------------------------------------------------------------------- restricting updates (Eq. 15)
@contextmanager
def restrict_updates(model: nn.Module, frozen: dict[str, torch.Tensor] | None) -> Iterator[None]:
    """Inside the block, the entries of `model`'s parameters marked True in `frozen` do not change,
    whatever optimiser or method updates the model (Eq. 15: theta_i' = theta_i for theta_i in theta_s).

    Two mechanisms, both generic: a gradient hook zeroes the frozen entries' gradients (so gradient
    norms, clipping and optimiser moments see only the trainable entries), and a global optimiser
    step post-hook (torch.optim) copies the frozen entries back after *every* optimiser step (so
    momentum, weight decay or Adam's state cannot move them). The entries are restored once more on
    exit, which also undoes direct in-place edits made outside an optimiser. Parameters absent from
    `frozen` train freely. Wrap any method's `unlearn` call in this to add SPS to it (Table VIII)."""
    if not frozen:
        yield
        return
    params = dict(model.named_parameters())
    unknown = sorted(set(frozen) - set(params))
    if unknown:
        raise UserError(f"uisps: the parameter mask names {unknown[0]!r}, which the model does not have")
    masks, snaps, handles = {}, {}, []
    for k, m in frozen.items():
        p = params[k]
        if tuple(m.shape) != tuple(p.shape):
            raise UserError(f"uisps: mask of {k!r} has shape {tuple(m.shape)}, the parameter {tuple(p.shape)}")
        if not bool(m.any()):
            continue
        masks[k] = m.to(device=p.device, dtype=torch.bool)
        snaps[k] = p.detach().clone()
        if p.requires_grad:
            handles.append(p.register_hook(lambda g, m=masks[k]: g.masked_fill(m, 0.0)))

    def restore(*_args, **_kwargs):
        with torch.no_grad():
            for k, m in masks.items():
                p = params[k]
                if p.device != m.device:  # the method moved the model
                    masks[k], snaps[k] = m.to(p.device), snaps[k].to(p.device)
                p.copy_(torch.where(masks[k], snaps[k], p))

    from torch.optim.optimizer import register_optimizer_step_post_hook

    handles.append(register_optimizer_step_post_hook(lambda opt, args, kwargs: restore()))
    try:
        yield
    finally:
        for h in handles:
            h.remove()
        restore()


# --------------------------------------------------------------------------- the artefact
def check_importance_settings(s: dict) -> dict:
    missing = [k for k in IMPORTANCE_KEYS if k not in s]
    if missing:
        raise UserError(f"uisps importance settings lack {missing[0]!r}")
    out = {k: s[k] for k in IMPORTANCE_KEYS}
    if out["fisher_kind"] not in FISHER_KINDS:
        raise UserError(f"uisps: fisher_kind must be one of {', '.join(FISHER_KINDS)}, got {out['fisher_kind']!r}")
    if not 0 < float(out["fisher_retain_fraction"]) <= 1:
        raise UserError("uisps: fisher_retain_fraction must be in (0, 1]")
    return out


def run_importance(job: Job, original_ckpt: str, synthetic_npz_paths: list[str], retain_view: str,
                   settings: dict) -> None:
    """Rule make_importance: diagonal Fisher of the original model on the synthetic forget samples
    (rule make_inversion's files, every class) and on the retain portion D'_r (`retain_view`, a .npz
    with x uint8 [N,C,H,W] and y; the workflow materialises `uisps.importance_view(fraction, seed)`), both
    saved raw (safetensors keys "forget/<param>" and "retain/<param>") with a deterministic info JSON
    (sizes and the frozen fraction a few alphas would give) and the timing sidecar."""
    from ...models.checkpoint import load_model

    dev = job.start()
    seed = job.seed
    s = check_importance_settings(settings)
    model, meta = load_model(original_ckpt, dev)
    shape = (int(meta["in_channels"]), int(meta["image_size"]), int(meta["image_size"]))
    syn = load_inversion(synthetic_npz_paths, shape)
    classes = sorted(syn)
    xg = torch.cat([syn[c] for c in classes])
    yg = torch.cat([torch.full((len(syn[c]),), c, dtype=torch.long) for c in classes])
    z = read_npz(retain_view)
    if "x" not in z or "y" not in z or z["x"].ndim != 4 or tuple(z["x"].shape[1:]) != shape:
        raise UserError(f"{retain_view} is not a retain view for this model (needs x uint8 [N,{shape[0]},"
                        f"{shape[1]},{shape[2]}] and y); delete it and rerun")
    xr, yr = to_float(z["x"]), torch.from_numpy(z["y"].astype(np.int64))
    if np.isin(z["y"], classes).any():
        raise UserError(f"{retain_view} contains samples of the forgotten class(es) {classes}; it must be a retain view")
    batch = int(settings.get("fisher_batch", 32))
    with job.timed() as usage:
        imp_g = fisher_importance(model, xg, yg, s["fisher_kind"], dev, batch)
        imp_r = fisher_importance(model, xr, yr, s["fisher_kind"], dev, batch)
    tensors = {**{f"forget/{k}": v for k, v in imp_g.items()}, **{f"retain/{k}": v for k, v in imp_r.items()}}
    info = {"kind": IMPORTANCE_KIND, "classes": classes, "n_forget": len(yg), "n_retain": len(yr),
            "settings": s, "seed": int(seed), "n_params": sum(v.numel() for v in imp_g.values()),
            "frozen_fraction_by_alpha": {
                str(a): mask_summary(select_parameters(imp_g, imp_r, a))["frozen_fraction"]
                for a in (0.5, 1.0, 1.5, 2.0, 2.5, 3.0)}}
    save_checkpoint(job.out["importance"], tensors, info)
    write_json(job.out["info"], info)
    print(f"uisps importance on {len(yg)} synthetic + {len(yr)} retain samples in {usage.seconds:.2f}s; "
          f"frozen at alpha 1.5: {info['frozen_fraction_by_alpha']['1.5']:.3f}", flush=True)


def load_importance(path: str, model: nn.Module | None = None) -> tuple[dict, dict, dict]:
    """(forget importance, retain importance, meta) from rule make_importance's file; checked
    against `model`'s parameter names and shapes when given. One UserError line otherwise."""

    tensors, meta = load_checkpoint(path)
    fix = "delete it and rerun the make_importance rule"
    if meta.get("kind") != IMPORTANCE_KIND:
        raise UserError(f"{path} is not a UISPS importance file (kind {meta.get('kind')!r}); {fix}")
    g = {k[len("forget/"):]: v for k, v in tensors.items() if k.startswith("forget/")}
    r = {k[len("retain/"):]: v for k, v in tensors.items() if k.startswith("retain/")}
    if not g or set(g) != set(r):
        raise UserError(f"{path} holds an incomplete importance (forget/retain parameter sets differ); {fix}")
    if model is not None:
        shapes = {k: tuple(p.shape) for k, p in model.named_parameters()}
        if set(shapes) != set(g) or any(tuple(g[k].shape) != shapes[k] for k in g):
            raise UserError(f"{path} was computed for another model (parameter names/shapes differ); {fix}")
    for k in g:
        if not (torch.isfinite(g[k]).all() and torch.isfinite(r[k]).all()):
            raise UserError(f"{path}: importance of {k!r} is not finite; {fix}")
    return g, r, meta
