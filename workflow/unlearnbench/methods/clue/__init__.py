"""CLUE (Sayyed et al., paper 000): class unlearning without retain data by making forget samples
look out-of-distribution. Per epoch (Algorithm 1): saliency mask M = 1(|w dCE/dw| > tau) on the
forget set from the current student; per forget batch, KD loss KL(softmax(teacher(x + n)) ||
softmax(student(x))) (Eqs 3-4) plus lambda * energy loss mean_k sum_c exp(z_kc / T) on the student's
logits (Eq. 2); update theta <- theta - mu (M ⊙ grad) (Eq. 7). Forget-only access.

Options beyond the paper (all named, paper behaviour by default):
- energy_variant "logit_norm": the reference code's per-sample temperature ||z||_2;
- teacher "refresh": the reference code's teacher re-copied from the student every epoch;
- kl_direction "student_teacher": the reference code's KL(student || teacher);
- noise_sigma_max: sigma per sample ~ U[noise_sigma, noise_sigma_max) (the code: 0.5, 1.0);
- mask_mode "top_global"/"top_layer" (keep a fraction of weights) instead of an absolute tau;
- soft_labels "random": Table 7's comparison, KD towards softmax of fixed random logits instead of the
  noisy teacher (mask and energy unchanged);
- kd / energy / use_mask switches: Table 8's ablations.
The first epoch's mask is the `mask` artefact (made by rule make_mask from the original model).
"""

from __future__ import annotations

import copy

from ...data import load_view
from ...errors import UserError
from ...infra.lazy import F, torch
from ...io import write_json
from ...parts.energy import ENERGY_VARIANTS, energy_loss
from ...runtime import Job, generator, iterate_batches
from ...training import make_optimizer, set_bn_train
from .._base import Access, UnlearningMethod, between, ge, gt, one_of, register_method
from .saliency import (MASK_KEYS, MASK_MODES, MASK_REDUCE, compute_mask, layer_densities, load_mask, mask_density,
                       masked_step, save_mask)


def corrupt(x: torch.Tensor, hp: dict, gen: torch.Generator) -> torch.Tensor:
    """x_ood = x + n, n ~ P (Eq. 4), drawn on the CPU generator; optionally clipped to [0, 1]."""
    if hp["noise"] == "gaussian":
        n = x.shape[0]
        if hp["noise_sigma_max"] is not None:
            sigma = hp["noise_sigma"] + (hp["noise_sigma_max"] - hp["noise_sigma"]) * torch.rand(n, generator=gen)
        else:
            sigma = torch.full((n,), float(hp["noise_sigma"]))
        out = x + sigma.view(-1, *[1] * (x.dim() - 1)) * torch.randn(x.shape, generator=gen)
    elif hp["noise"] == "salt_pepper":
        u = torch.rand(x.shape, generator=gen)
        out = torch.where(u < hp["salt_prob"], torch.ones_like(x), x)
        out = torch.where((u >= hp["salt_prob"]) & (u < hp["salt_prob"] + hp["pepper_prob"]), torch.zeros_like(x), out)
    else:
        raise UserError(f"CLUE: unknown noise {hp['noise']!r}; use gaussian or salt_pepper")
    return out.clamp(0, 1) if hp["clip_noisy"] else out


def kd_loss(teacher_logits: torch.Tensor, student_logits: torch.Tensor, direction: str = "teacher_student") -> torch.Tensor:
    """Mean over the batch of D_KL(softmax(teacher) || softmax(student)) (Eq. 3), or the reverse."""
    lt, ls = F.log_softmax(teacher_logits, 1), F.log_softmax(student_logits, 1)
    if direction == "teacher_student":
        return (lt.exp() * (lt - ls)).sum(1).mean()
    if direction == "student_teacher":
        return (ls.exp() * (ls - lt)).sum(1).mean()
    raise UserError(f"CLUE: kl_direction must be teacher_student or student_teacher, got {direction!r}")


def _finite_on(model, x: torch.Tensor, dev) -> bool:
    with torch.no_grad():
        return all(bool(torch.isfinite(model(x[i:i + 512].to(dev))).all()) for i in range(0, len(x), 512))


@register_method("clue")
class CLUE(UnlearningMethod):
    defaults = {
        "lr": 1e-2, "epochs": 10, "batch_size": 256, "optimizer": "sgd", "momentum": 0.9, "weight_decay": 0.0,
        "kd": True, "energy": True, "use_mask": True,           # Table 8 ablation switches
        "lambda_energy": 1.0, "temperature": 1.0, "energy_variant": "paper",
        "kl_direction": "teacher_student", "teacher": "original", "soft_labels": "teacher",
        "random_logit_std": 1.0,
        "noise": "gaussian", "noise_sigma": 1.0, "noise_sigma_max": None,
        "salt_prob": 0.25, "pepper_prob": 0.25, "clip_noisy": True,
        "mask_every_epoch": True,
        "mask_mode": "absolute", "mask_tau": 0.01, "mask_fraction": 0.1, "mask_reduce": "mean", "mask_batch_size": 256,
        "bn_train": False,
    }
    supports = frozenset({"class", "random"})
    smoke = {"epochs": 1, "mask_mode": "top_layer", "mask_fraction": 0.1, "batch_size": 16, "temperature": 10.0}
    artefacts = {"mask": MASK_KEYS}  # the first epoch's mask (rule make_mask)

    checks = {
        "energy_variant": one_of(*ENERGY_VARIANTS), "teacher": one_of("original", "refresh"),
        "soft_labels": one_of("teacher", "random"), "noise": one_of("gaussian", "salt_pepper"),
        "kl_direction": one_of("teacher_student", "student_teacher"), "temperature": gt(0),
        "lambda_energy": ge(0), "random_logit_std": gt(0), "noise_sigma": ge(0),
        "salt_prob": between(0, 1), "pepper_prob": between(0, 1),
        "mask_mode": one_of(*MASK_MODES), "mask_reduce": one_of(*MASK_REDUCE), "mask_tau": ge(0),
        "mask_fraction": between(0, 1, low_open=True), "mask_batch_size": ge(1),
    }

    def validate(self):
        h = self.hp
        if not (h["kd"] or h["energy"]):
            raise UserError("method 'clue': at least one of kd and energy must be true")
        if h["noise_sigma_max"] is not None and h["noise_sigma_max"] < h["noise_sigma"]:
            raise UserError("method 'clue': need noise_sigma <= noise_sigma_max")
        if h["salt_prob"] + h["pepper_prob"] > 1:
            raise UserError("method 'clue': salt_prob + pepper_prob must be <= 1")

    def needs(self) -> tuple[str, ...]:  # the no-mask ablation needs no mask artefact
        return ("mask",) if self.hp["use_mask"] else ()

    def mask_settings(self) -> dict:
        return self.artefact_settings("mask")

    def access(self) -> Access:
        return Access(forget=True)

    def unlearn(self, model, data, ctx):
        hp = self.hp
        x, y = data.forget
        dev = ctx.device
        gen = generator(ctx.seed)
        opt = make_optimizer(model.parameters(), hp["optimizer"], hp["lr"], hp["momentum"], hp["weight_decay"])
        masks = None
        if hp["use_mask"]:
            if "mask" not in ctx.artefacts:
                raise UserError("CLUE with use_mask needs the mask artefact (rule make_mask)")
            masks, meta = load_mask(ctx.artefacts["mask"])
            if meta.get("settings") != self.mask_settings():
                raise UserError(f"mask artefact {ctx.artefacts['mask']} was made with other settings; rerun rule make_mask")
            masks = {n: m.to(dev) for n, m in masks.items()}
        random_targets = torch.randn(len(y), data.num_classes, generator=gen) * hp["random_logit_std"]
        teacher = ctx.original
        log = []
        # states after the last two finished epochs (then the original): on divergence, the newest
        # one whose forget-set logits are finite is returned
        snaps = [copy.deepcopy(model.state_dict())]
        for epoch in range(hp["epochs"]):
            if hp["use_mask"] and epoch > 0 and hp["mask_every_epoch"]:
                masks = compute_mask(model, x, y, dev, self.mask_settings())  # step 1, from the student
            if hp["teacher"] == "refresh" and epoch > 0:
                teacher = copy.deepcopy(model).eval()
                for p in teacher.parameters():
                    p.requires_grad_(False)
            model.train()
            set_bn_train(model, hp["bn_train"])
            sums = {"kd": 0.0, "energy": 0.0, "n": 0}
            for idx in iterate_batches(len(y), hp["batch_size"], gen):
                xb = x[idx]
                noisy = corrupt(xb, hp, gen) if hp["kd"] and hp["soft_labels"] == "teacher" else None
                out = model(xb.to(dev))
                loss = out.new_zeros(())
                if hp["kd"]:
                    with torch.no_grad():
                        t_logits = teacher(noisy.to(dev)) if noisy is not None else random_targets[idx].to(dev)
                    l_kd = kd_loss(t_logits, out, hp["kl_direction"])
                    loss = loss + l_kd
                    sums["kd"] += l_kd.item() * len(idx)
                if hp["energy"]:
                    l_e = energy_loss(out, hp["temperature"], hp["energy_variant"])
                    loss = loss + hp["lambda_energy"] * l_e
                    sums["energy"] += l_e.item() * len(idx)
                if not torch.isfinite(loss):  # divergence (e.g. the no-mask ablation)
                    ctx.info["diverged_epoch"] = epoch + 1
                    break
                opt.zero_grad(set_to_none=True)
                loss.backward()
                masked_step(opt, model, masks)
                sums["n"] += len(idx)
            if "diverged_epoch" not in ctx.info and not all(torch.isfinite(p).all() for p in model.parameters()):
                ctx.info["diverged_epoch"] = epoch + 1
            if "diverged_epoch" in ctx.info:
                break
            snaps = [copy.deepcopy(model.state_dict())] + snaps[:1]
            rec = {"epoch": epoch + 1, "kd": sums["kd"] / sums["n"], "energy": sums["energy"] / sums["n"],
                   "mask_density": mask_density(masks) if masks is not None else 1.0}
            log.append(rec)
            ctx.log(f"clue epoch {epoch + 1}: kd {rec['kd']:.4f} energy {rec['energy']:.4f} mask density {rec['mask_density']:.4f}")
        model.eval()
        if "diverged_epoch" in ctx.info or not _finite_on(model, x, dev):
            ctx.info.setdefault("diverged_epoch", hp["epochs"])
            for back, state in enumerate(snaps + [ctx.original.state_dict()]):
                model.load_state_dict(state)
                if _finite_on(model, x, dev):
                    break
            ctx.info["returned_epoch"] = max(len(log) - back, 0) if back < len(snaps) else 0
            ctx.log(f"clue: diverged in epoch {ctx.info['diverged_epoch']}; returning the state after epoch {ctx.info['returned_epoch']}")
        ctx.info.update({"epochs": log, "mask_density_first": log[0]["mask_density"] if log else None,
                         "mask_density_mean": sum(r["mask_density"] for r in log) / len(log) if log else None})
        model.eval()
        return model


def run_make_mask(job: Job, original: str, forget: str, settings: dict) -> None:
    """Rule make_mask: the first epoch's mask (Eq. 6) from the original model on the forget set."""
    from ...models.checkpoint import load_model

    dev = job.start()
    x, y, _ = load_view(forget)
    model, _ = load_model(original, dev)
    with job.timed() as usage:
        masks = compute_mask(model, x, y, dev, settings)
    dens = mask_density(masks)
    save_mask(job.out["mask"], masks, {"settings": settings, "density": dens})
    write_json(job.out["info"], {"settings": settings, "density": dens,
                          "n_params": int(sum(m.numel() for m in masks.values())), "layers": layer_densities(masks)})
    print(f"CLUE mask {settings}: density {dens:.4f} ({usage.seconds:.2f}s)")
