"""MuGAN (paper 002, "Zero-shot Machine Unlearning using GANs", Sec. 3.2, Algs. 7 and 8): class
unlearning from per-class GANs; no real sample is read at deletion time.

Stages (each its own file and rule; the functions live in parts/):
1. train_gan (parts/gan.run_train_gan, rules/artefacts/gan.smk): one DCGAN per class, trained by
   the data owner on that class's training images when the original model is trained (artefact
   "gan", settings GAN_KEYS). The GANs depend on the data only, so every model trained on the same
   dataset (and seed) shares them.
2. make_synthetic (parts/synthetic.run_make_synthetic, kind "gan", rules/artefacts/synthetic.smk):
   `samples_per_class` images per class, each kept only if the original model predicts the GAN's
   class; the artefact "synthetic_gan" is that .npz (settings GAN_KEYS + SAMPLE_KEYS), with a PNG
   grid of the accepted samples under results/figures/synthetic/. It does not depend on the forget
   request: every request on the same original model reuses it.
The method declares both artefacts: it reads only the synthetic set; the GAN files are declared so
that their training time is part of every MuGAN run's artefact cost (time_artefacts_s).
3. unlearn (Alg. 8): D_f = synthetic samples of the forget classes, D_r = the others. Impair: one
   pass over D_f (batch `forget_batch_size`) minimising KD-KL(model(x_f), original(u)) with
   temperature T, u uniform random inputs of x_f's shape (parts/losses.kd_kl: batch-mean
   KL(original || model) * T^2, the reference's DistillKL); then repair: one pass of CE over D_r
   (batch `retain_batch_size`); one optimiser (Adam, `lr`) for both. BatchNorm in train mode
   throughout (`bn_train` True, paper-exact: the reference's model.train(),
   execute_unlearning_algorithms.py:118 and unlearning_techniques.py:45; False freezes the running
   statistics); the frozen original in eval mode.
Multi-class forgetting works unchanged (D_f holds every forget class's samples). Random (sample)
forgetting is not supported: the GANs are per class.

Choices: u ~ U[0,1) in pixel space (`random_input` "uniform"); the reference feeds torch.rand to a
model whose inputs are normalised with mean = std = 0.5 (unlearning_techniques.py:54, datasets.py:12-15
Normalize((0.5,)*3, (0.5,)*3)), i.e. U[0,1) in the normalised space: "uniform_normalized"
(paper-exact; u = mean + std * U[0,1) in pixels, so the model's (u - mean) / std is U[0,1) for any
dataset's mean/std). D_f and D_r are shuffled (Alg. 5 shuffles both; the reference does not
shuffle D_f).
"""

from __future__ import annotations

from ..data import NUM_CLASSES
from ..errors import UserError
from ..infra.lazy import F, torch
from ..runtime import generator, iterate_batches
from ..training import make_optimizer, set_bn_train
from ._base import Access, UnlearningMethod, between, ge, gt, one_of, register_method

# Mirrors parts/gan.GAN_KEYS and parts/synthetic.SAMPLE_KEYS (kept here: this file must not import torch).
GAN_KEYS = ("gan_z_dim", "gan_g_width", "gan_d_width", "gan_epochs", "gan_batch_size", "gan_lr", "gan_beta1")
SAMPLE_KEYS = ("samples_per_class", "max_draw_factor", "sample_batch", "min_fill")
RANDOM_INPUTS = ("uniform", "uniform_normalized")

# Hyperparameters of Alg. 8, shared with zMuGAN.
UNLEARN_DEFAULTS = {
    "lr": 1e-4,                # paper (Sec. 4.4)
    "optimizer": "adam",       # paper (Alg. 8)
    "weight_decay": 0.0,
    "temperature": 4.0,        # code (DistillKL(4.0))
    "forget_batch_size": 32,   # code
    "retain_batch_size": 64,   # code
    "random_input": "uniform",  # choice (see module docstring)
    "bn_train": True,          # code (model.train() during unlearning)
}
UNLEARN_CHECKS = {"temperature": gt(0), "forget_batch_size": ge(1), "retain_batch_size": ge(1),
                  "random_input": one_of(*RANDOM_INPUTS)}
SAMPLE_CHECKS = {"samples_per_class": ge(1), "max_draw_factor": ge(1), "sample_batch": ge(1),
                 "min_fill": between(0, 1)}


def dataset_classes(spec: dict) -> int:
    """The class count of a dataset entry, known before it is prepared (per-class GAN files)."""

    if spec["source"] not in NUM_CLASSES:
        raise UserError(f"MuGAN needs the class count of dataset source {spec['source']!r} to plan one GAN per class; "
                        f"known: {', '.join(sorted(NUM_CLASSES))}")
    return NUM_CLASSES[spec["source"]]


def synthetic_path(ctx, kind: str) -> str:
    path = ctx.artefacts.get(kind)
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            raise UserError(f"artefact {kind!r}: expected one synthetic .npz, got {len(path)} files")
        path = path[0]
    if not path:
        raise UserError(f"artefact {kind!r} was not provided to this job; build it with rule make_synthetic")
    return str(path)


def split_synthetic(x: torch.Tensor, y: torch.Tensor, data, name: str, empty_forget: str = "error"):
    """(x_f, x_r, y_r, missing): the synthetic samples of the forget classes and of the retained classes,
    and the forget classes with no sample.
    A forget class without a sample is an error unless `empty_forget` is "repair_only" (Alg. 8's impair
    loop then runs over nothing: what the thesis' code does with an empty D_f)."""
    if len(y) and int(y.max()) >= data.num_classes:
        raise UserError(f"{name}: the synthetic set has class {int(y.max())}, the model has {data.num_classes} classes")
    is_f = torch.isin(y, torch.as_tensor(data.forget_classes, dtype=torch.long))
    missing = [c for c in data.forget_classes if not (y == c).any()]
    if missing and empty_forget == "error":
        raise UserError(f"{name}: the synthetic set has no sample of forget class(es) {missing} "
                        f"(empty_forget: repair_only runs the repair step alone)")
    if is_f.all():
        raise UserError(f"{name}: the synthetic set has no sample of a retained class")
    return x[is_f], x[~is_f], y[~is_f], missing


def impair_repair(model, original, xf: torch.Tensor, xr: torch.Tensor, yr: torch.Tensor, hp: dict, seed: int,
                  device, log=print, name: str = "mugan") -> list[dict]:
    """Alg. 8 in place on `model`; returns one log row per stage."""
    from ..parts.losses import kd_kl

    gen = generator(seed)
    opt = make_optimizer(model.parameters(), hp["optimizer"], hp["lr"], 0.9, hp["weight_decay"])
    original.eval()
    model.train()
    set_bn_train(model, hp["bn_train"])
    mean = getattr(original, "mean", torch.zeros(1)).detach().cpu()
    std = getattr(original, "std", torch.ones(1)).detach().cpu()
    rows = []

    def step(loss, stage):
        if not torch.isfinite(loss):
            raise UserError(f"{name}: loss became {loss.item()} in the {stage} step; lower lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    # impair: the model on synthetic forget samples -> the original on random inputs
    tot, still, n = 0.0, 0, len(xf)
    for idx in iterate_batches(n, hp["forget_batch_size"], gen):
        xb = xf[idx].to(device)
        u = torch.rand(xb.shape, generator=gen)
        if hp["random_input"] == "uniform_normalized":
            u = mean + std * u
        with torch.no_grad():
            target = original(u.to(device))
        out = model(xb)
        loss = kd_kl(out, target, hp["temperature"])
        step(loss, "impair")
        tot += loss.item() * len(idx)
        with torch.no_grad():
            still += int((out.argmax(1) == original(xb).argmax(1)).sum())
    if n:
        rows.append({"stage": "impair", "n": n, "loss": tot / n, "agree_with_original": 100 * still / n})
    else:  # an empty D_f (empty_forget: repair_only): nothing to impair
        rows.append({"stage": "impair", "n": 0})
    # repair: cross-entropy on the synthetic retained-class samples
    tot, correct, n = 0.0, 0, len(yr)
    for idx in iterate_batches(n, hp["retain_batch_size"], gen):
        xb, yb = xr[idx].to(device), yr[idx].to(device)
        out = model(xb)
        loss = F.cross_entropy(out, yb)
        step(loss, "repair")
        tot += loss.item() * len(idx)
        correct += int((out.argmax(1) == yb).sum())
    rows.append({"stage": "repair", "n": n, "loss": tot / n, "train_acc": 100 * correct / n})
    for r in rows:
        log(f"{name} {r['stage']}: " + " ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                                                for k, v in r.items() if k != "stage"))
    model.eval()
    return rows


def unlearn_from_synthetic(method: UnlearningMethod, kind: str, model, data, ctx):
    """Load the synthetic artefact `kind`, split it by the request and run Alg. 8."""
    from ..parts.synthetic import load_synthetic

    path = synthetic_path(ctx, kind)
    x, y, meta = load_synthetic(path, "gan" if kind == "synthetic_gan" else "inversion")
    xf, xr, yr, missing = split_synthetic(x, y, data, method.name, method.hp.get("empty_forget", "error"))
    if missing:
        ctx.log(f"{method.name}: no synthetic sample of forget class(es) {missing} (empty_forget: repair_only)")
    log = impair_repair(model, ctx.original, xf, xr, yr, method.hp, ctx.seed, ctx.device, ctx.log, method.name)
    ctx.info.update(n_forget=len(xf), n_retain=len(yr), accept_rate=meta["accept_rate"], log=log,
                    synthetic_file=path, forget_classes_without_sample=missing)
    return model


@register_method("mugan")
class MuGAN(UnlearningMethod):
    defaults = {
        # per-class DCGANs (rule train_gan)
        "gan_z_dim": 100,         # code (DCGAN tutorial)
        "gan_g_width": 64,        # tutorial (ngf)
        "gan_d_width": 64,        # tutorial (ndf)
        "gan_epochs": 50,         # choice (the thesis does not say; tune per dataset)
        "gan_batch_size": 128,    # tutorial
        "gan_lr": 2e-4,           # tutorial / reference notes
        "gan_beta1": 0.5,         # tutorial
        # filtered sampling (rule make_synthetic)
        "samples_per_class": 2500,  # paper (Sec. 4.4; Tables 7-8 sweep 100..10000)
        "max_draw_factor": 20.0,  # choice: at most this many draws per kept sample and class
        "sample_batch": 128,      # code (draws of 128)
        "min_fill": 1.0,          # choice: every class full; < 1 keeps a rarely accepted class short, 0 even empty
        **UNLEARN_DEFAULTS,
    }
    checks = {"gan_z_dim": ge(1), "gan_g_width": ge(1), "gan_d_width": ge(1), "gan_batch_size": ge(2),
              "gan_epochs": ge(1), "gan_beta1": between(0, 1, high_open=True), **SAMPLE_CHECKS, **UNLEARN_CHECKS}
    supports = frozenset({"class"})
    smoke = {"gan_z_dim": 16, "gan_g_width": 8, "gan_d_width": 8, "gan_epochs": 15, "gan_batch_size": 16,
             "gan_lr": 2.0e-3, "samples_per_class": 20, "max_draw_factor": 500.0, "min_fill": 0.05, "lr": 5.0e-3}
    artefacts = {"gan": GAN_KEYS, "synthetic_gan": GAN_KEYS + SAMPLE_KEYS}

    def access(self) -> Access:
        return Access(label_text="generator (no real data)")

    def unlearn(self, model, data, ctx):
        return unlearn_from_synthetic(self, "synthetic_gan", model, data, ctx)
