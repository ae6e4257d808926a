"""Data-free inversion of a class from a trained classifier (UISPS, paper 004, Sec. IV-B, Eqs 1-5;
DeepInversion, Yin et al. 2020, for the BatchNorm prior).

A batch x̂ of `inv_samples` images starts from random values and is optimised (Adam, `inv_lr`,
`inv_iters` steps) against the frozen original model on

    L_G = CE(M(x̂), Y_i) + lambda1 * L_BN(x̂) + s * lambda2 * L_ET(x̂_sub)                 (Eq. 5)

- CE: mean over the whole batch (Eq. 1).
- L_BN (Eq. 2): sum over BN layers l of ||mu_l(x̂) - running_mean_l||_2 + ||sigma²_l(x̂) -
  running_var_l||_2: plain (not squared) l2 norms over the channel vector, summed over layers.
  mu_l / sigma²_l are the per-channel batch mean and *biased* variance (as BN normalises a training
  batch and as DeepInversion's code computes them) of the feature map entering BN layer l.
- L_ET (Eqs 3-4): Shannon entropy of softmax(M(x̂_sub)), averaged over the samples of the subset
  x̂_sub = the first round(inv_entropy_fraction * n) samples of the batch (a fixed subset).
- s = -1 for inv_entropy_sign "maximise" (default, choice): the paper's text and Fig. 3 want the
  subset to become low-confidence / high-entropy samples near the decision boundary, which needs the
  entropy raised; Eq. 5 read literally (+lambda2 * entropy, minimised) would do the opposite and is
  available as "minimise".

Parametrisation (inv_param, choice; the paper says only "randomly initialize"): "clamp" optimises
pixels directly, x̂ ~ U(0,1) at init and clamped to [0,1] after every step; "sigmoid" optimises
logits z ~ N(0,1) with x̂ = sigmoid(z). Either way the samples are [0,1] pixels, which the model
normalises itself. Adam with torch's default betas (choice; the paper names no optimiser). No
jitter/flip/TV priors (DeepInversion has them, the paper does not).

The model is put in eval mode for the whole optimisation, so BN uses (and never updates) its
running statistics; its parameters are frozen and restored afterwards.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator

import numpy as np

from ..errors import UserError
from ..infra.lazy import F, nn, torch
from ..io import atomic_path, read_npz, write_json, write_npz
from ..runtime import Job
from ..training import make_optimizer

# The hyperparameters that determine one inversion artefact (per class).
INVERSION_KEYS = ("inv_samples", "inv_iters", "inv_lr", "inv_lambda1", "inv_lambda2",
                  "inv_entropy_fraction", "inv_entropy_sign", "inv_param")
INVERSION_DEFAULTS = {
    "inv_samples": 32,            # paper: 32 samples per forgotten class
    "inv_iters": 1000,            # paper
    "inv_lr": 0.01,               # paper
    "inv_lambda1": 0.01,          # paper (BN statistics weight)
    "inv_lambda2": 0.05,          # paper (entropy weight); 0 = Table II's "no ENT" ablation
    "inv_entropy_fraction": 0.5,  # choice: |x̂_sub| / |x̂| (the paper gives no value)
    "inv_entropy_sign": "maximise",  # choice: the paper's intent (see module docstring)
    "inv_param": "clamp",         # choice: pixel space with clamping, or "sigmoid"
}
ENTROPY_SIGNS = ("maximise", "minimise")
PARAMS = ("clamp", "sigmoid")


def check_inversion_settings(s: dict) -> dict:
    """The inversion settings with types checked (one-line UserError otherwise)."""
    missing = [k for k in INVERSION_KEYS if k not in s]
    if missing:
        raise UserError(f"inversion settings lack {missing[0]!r}; pass all of {', '.join(INVERSION_KEYS)}")
    out = {k: s[k] for k in INVERSION_KEYS}
    if int(out["inv_samples"]) < 1 or int(out["inv_iters"]) < 0 or float(out["inv_lr"]) <= 0:
        raise UserError("inversion: need inv_samples >= 1, inv_iters >= 0 and inv_lr > 0")
    if float(out["inv_lambda1"]) < 0 or float(out["inv_lambda2"]) < 0:
        raise UserError("inversion: inv_lambda1 and inv_lambda2 must be >= 0")
    if not 0 <= float(out["inv_entropy_fraction"]) <= 1:
        raise UserError("inversion: inv_entropy_fraction must be in [0, 1]")
    if out["inv_entropy_sign"] not in ENTROPY_SIGNS:
        raise UserError(f"inversion: inv_entropy_sign must be one of {', '.join(ENTROPY_SIGNS)}")
    if out["inv_param"] not in PARAMS:
        raise UserError(f"inversion: inv_param must be one of {', '.join(PARAMS)}")
    return out


# --------------------------------------------------------------------------- BN statistics (Eq. 2)
def bn_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The BatchNorm layers that carry running statistics, in module order."""
    return [m for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None]


def batch_statistics(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and biased variance of a feature map [N, C, ...] (what BN normalises with)."""
    dims = [0] + list(range(2, h.dim()))
    return h.mean(dims), h.var(dims, unbiased=False)


@contextmanager
def _capture_bn(model: nn.Module) -> Iterator[list]:
    """Collect, for every BN layer, its running statistics and the statistics of its input batch."""
    terms: list = []

    def hook(m, inputs):
        mu, var = batch_statistics(inputs[0])
        terms.append((mu, var, m.running_mean, m.running_var))

    handles = [m.register_forward_pre_hook(hook) for m in bn_layers(model)]
    try:
        yield terms
    finally:
        for h in handles:
            h.remove()


def _bn_loss(terms: list) -> torch.Tensor:
    loss = terms[0][0].new_zeros(()) if terms else torch.zeros(())
    for mu, var, rm, rv in terms:
        loss = loss + torch.linalg.vector_norm(mu - rm) + torch.linalg.vector_norm(var - rv)
    return loss


def forward_with_bn_loss(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, L_BN) from one forward pass. Call with the model in eval mode."""
    with _capture_bn(model) as terms:
        logits = model(x)
    return logits, _bn_loss(terms)


def bn_statistics_loss(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Eq. 2: sum_l ||mu_l(x) - E[mu_l]||_2 + ||sigma²_l(x) - E[sigma²_l]||_2 over BN layers,
    E[.] = the layer's running statistics. Exactly 0 when every BN layer's input batch has those
    statistics. The model's mode is left as it is (use eval mode, or running stats get updated)."""
    return forward_with_bn_loss(model, x)[1]


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Per-sample Shannon entropy of softmax(logits) (Eq. 4), in nats."""
    logp = F.log_softmax(logits, dim=1)
    return -(logp.exp() * logp).sum(1)


# --------------------------------------------------------------------------- the inversion
def _inv_seed(seed: int, cls: int) -> int:
    return (int(seed) * 1_000_003 + int(cls) * 104_729 + 29) % 2**31


def invert_class(model: nn.Module, cls: int, num_classes: int, shape: tuple[int, ...], settings: dict,
                 seed: int, device: torch.device, log_every: int | None = None) -> tuple[torch.Tensor, dict]:
    """Synthesise `inv_samples` images of class `cls` from `model` alone (Eq. 5). Returns (x on the
    CPU in [0,1], info). The model's weights and BN running statistics are left untouched."""
    s = check_inversion_settings(settings)
    if not 0 <= cls < num_classes:
        raise UserError(f"inversion: class {cls} out of range 0..{num_classes - 1}")
    n, iters, lam1, lam2 = int(s["inv_samples"]), int(s["inv_iters"]), float(s["inv_lambda1"]), float(s["inv_lambda2"])
    if lam1 > 0 and not bn_layers(model):
        raise UserError("inversion: the model has no BatchNorm layer, so L_BN (Eq. 2) is undefined; set inv_lambda1: 0")
    n_sub = int(round(float(s["inv_entropy_fraction"]) * n))
    sign = -1.0 if s["inv_entropy_sign"] == "maximise" else 1.0
    was_training = model.training
    flags = [p.requires_grad for p in model.parameters()]
    model.eval()  # BN uses its running statistics and never updates them
    for p in model.parameters():
        p.requires_grad_(False)

    gen = torch.Generator().manual_seed(_inv_seed(seed, cls))
    if s["inv_param"] == "clamp":
        var = torch.rand((n, *shape), generator=gen).to(device).requires_grad_(True)
        to_x = lambda v: v  # noqa: E731
    else:
        var = torch.randn((n, *shape), generator=gen).to(device).requires_grad_(True)
        to_x = torch.sigmoid
    target = torch.full((n,), int(cls), dtype=torch.long, device=device)
    opt = make_optimizer([var], "adam", float(s["inv_lr"]))

    def losses():
        logits, bn = forward_with_bn_loss(model, to_x(var))
        ce = F.cross_entropy(logits, target)
        et = entropy(logits[:n_sub]).mean() if n_sub > 0 else logits.new_zeros(())
        total = ce + lam1 * bn + sign * lam2 * et
        return total, {"total": total.item(), "ce": ce.item(), "bn": bn.item(), "entropy_sub": et.item()}

    every = log_every or max(1, iters // 10)
    curve = []
    try:
        for it in range(iters):
            total, parts = losses()
            if not math.isfinite(parts["total"]):
                raise UserError(f"inversion of class {cls}: loss became {parts['total']} at step {it}; lower inv_lr")
            if it % every == 0:
                curve.append({"iter": it, **parts})
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            if s["inv_param"] == "clamp":
                with torch.no_grad():
                    var.clamp_(0.0, 1.0)
        with torch.no_grad():
            _, parts = losses()
            curve.append({"iter": iters, **parts})
            x = to_x(var).detach().clamp(0.0, 1.0)
            prob = F.softmax(model(x), dim=1)
            conf, ent = prob[:, cls], entropy(model(x))
    finally:
        for p, f in zip(model.parameters(), flags):
            p.requires_grad_(f)
        model.train(was_training)
    rest = slice(n_sub, n)
    info = {
        "class": int(cls), "n": n, "n_entropy_subset": n_sub,
        "loss_first": curve[0], "loss_final": curve[-1], "loss_curve": curve,
        "pred_as_class": float((prob.argmax(1) == cls).float().mean() * 100),
        "mean_confidence": float(conf.mean()),
        "mean_confidence_subset": float(conf[:n_sub].mean()) if n_sub else None,
        "mean_confidence_rest": float(conf[rest].mean()) if n_sub < n else None,
        "mean_entropy_subset": float(ent[:n_sub].mean()) if n_sub else None,
        "mean_entropy_rest": float(ent[rest].mean()) if n_sub < n else None,
        "pixel_mean": float(x.mean()), "pixel_std": float(x.std()),
    }
    return x.cpu(), info


# --------------------------------------------------------------------------- files
def save_grid(x: torch.Tensor, path: str, title: str = "", ncol: int = 8) -> None:
    """A PNG grid of [0,1] images [N, C, H, W] (matplotlib Agg canvas, no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    x = x.detach().cpu().clamp(0, 1).numpy()
    n = len(x)
    ncol = max(1, min(ncol, n))
    nrow = max(1, math.ceil(n / ncol))
    fig = Figure(figsize=(1.2 * ncol, 1.2 * nrow + (0.4 if title else 0)))
    FigureCanvasAgg(fig)
    for i in range(nrow * ncol):
        ax = fig.add_subplot(nrow, ncol, i + 1)
        ax.axis("off")
        if i < n:
            img = x[i]
            if img.shape[0] == 1:
                ax.imshow(img[0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            else:
                ax.imshow(np.transpose(img[:3], (1, 2, 0)), interpolation="nearest")
    if title:
        fig.suptitle(title, fontsize=9)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80, metadata={"Software": None})


def run_invert_class(job: Job, original_ckpt: str, cls: int, settings: dict) -> None:
    """Rule make_inversion: synthesise the replacement samples of one forgotten class from the original
    checkpoint alone (no data). Writes x (float32 [0,1]) / y / cls (.npz), an image grid (.png),
    a deterministic info JSON and the timing sidecar."""
    from ..models.checkpoint import load_model

    dev = job.start()
    seed = job.seed
    model, meta = load_model(original_ckpt, dev)
    s = check_inversion_settings(settings)
    shape = (int(meta["in_channels"]), int(meta["image_size"]), int(meta["image_size"]))
    with job.timed() as usage:
        x, info = invert_class(model, int(cls), int(meta["num_classes"]), shape, s, seed, dev)
    info.update(settings=s, seed=int(seed))
    write_npz(job.out["samples"], x=x.numpy().astype(np.float32), y=np.full(len(x), int(cls), dtype=np.int64),
              cls=np.asarray(int(cls), dtype=np.int64))
    save_grid(x, job.out["grid"], f"class {cls}: {info['pred_as_class']:.0f}% as class, "
                          f"conf {info['mean_confidence']:.2f}")
    write_json(job.out["info"], info)
    print(f"uisps inversion class {cls}: loss {info['loss_first']['total']:.3f} -> {info['loss_final']['total']:.3f}, "
          f"{info['pred_as_class']:.0f}% classified as {cls}, in {usage.seconds:.2f}s", flush=True)


def load_inversion(paths: list[str] | str, shape: tuple[int, ...] | None = None) -> dict[int, torch.Tensor]:
    """The per-class files of rule make_inversion: {class: x [n, C, H, W] in [0,1]}. A corrupt or
    foreign file raises one UserError line naming it."""

    paths = [paths] if isinstance(paths, str) else list(paths)
    out: dict[int, torch.Tensor] = {}
    for path in paths:
        z = read_npz(path)
        fix = "delete it and rerun the make_inversion rule"
        if not {"x", "y", "cls"} <= set(z):
            raise UserError(f"{path} is not a UISPS inversion file (keys {sorted(z)}); {fix}")
        x, y = z["x"], z["y"]
        cls = int(z["cls"]) if z["cls"].size == 1 else -1
        if x.dtype != np.float32 or x.ndim != 4 or len(x) == 0 or len(y) != len(x) or not (y == cls).all():
            raise UserError(f"{path} is a malformed UISPS inversion file (x {x.dtype} {x.shape}, y {y.shape}); {fix}")
        if shape is not None and tuple(x.shape[1:]) != tuple(shape):
            raise UserError(f"{path} holds images of shape {tuple(x.shape[1:])}, the model expects {tuple(shape)}; {fix}")
        if not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
            raise UserError(f"{path} holds pixels outside [0, 1]; {fix}")
        if cls in out:
            raise UserError(f"{path}: class {cls} given twice among the inversion files")
        out[cls] = torch.from_numpy(x)
    return out
