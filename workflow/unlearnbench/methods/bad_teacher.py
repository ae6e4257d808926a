"""Bad Teacher (Chundawat et al., "Can Bad Teaching Induce Forgetting? Unlearning in Deep Networks
using an Incompetent Teacher", AAAI 2023); a baseline of the MuGAN thesis (paper 002, Eq. 9).

The student starts as the original model and is distilled, on the union of the forget set and a
random `retain_fraction` of the retain set, from two teachers:
    L(x, l_u) = (1 - l_u) KL(T_s(x) || S(x)) + l_u KL(T_d(x) || S(x))            (thesis Eq. 9)
where l_u = 1 for forget samples, T_s is the competent teacher (the frozen original) and T_d the
incompetent teacher: a randomly initialised model of the same architecture. T_d is built here by
deep-copying the original and re-initialising every parameter from a generator seeded with the run
seed, so it needs nothing outside the declared access. Forget and retain samples are shuffled into
common batches, as in the authors' code.

Defaults are the authors' (paper + code; the thesis reuses them, reference-code notes): KL with
temperature 1, Adam lr 1e-4, 1 epoch, batch 256, 30 % of the retain set. Differences from the code
(named choices): the KL is the batch mean (the code uses F.kl_div's element-wise mean, i.e. the same
loss divided by the number of classes; Adam is nearly invariant to that scale) and BatchNorm
statistics stay frozen by default (`bn_train`).

Options (issue #21; reference = vikram2000b/bad-teaching-unlearning):
- `bn_train` False (default, choice): the student's BN layers in eval mode, running statistics stay
  the original's. True (paper-exact): the student trains in train mode, its running statistics
  follow the forget+retain batches. The reference never sets the student's mode: unlearn.py:21-37
  (unlearning_step) and 67-88 (blindspot_unlearner) call neither train() nor eval() on it, and the
  notebook (CIFARSuper20_Rocket_Unlearn.ipynb, the blindspot cell) builds it fresh
  (`ResNet18(...)` + load_state_dict), i.e. in torch's default train mode.
"""

from __future__ import annotations

import copy

from ..errors import UserError
from ..infra.lazy import torch
from ..runtime import generator, iterate_batches
from ..training import make_optimizer, set_bn_train
from ._base import Access, UnlearningMethod, between, gt, register_method


def _reinit_seed(seed: int) -> int:
    return (int(seed) * 2_654_435_761 + 12_345) % 2**31


def reinitialised_copy(model, seed: int):
    """A copy of `model` (same architecture, same input normalisation buffers) with every
    parameter re-initialised by its module's own `reset_parameters` (BatchNorm running statistics
    reset too), drawn from torch's RNG seeded with `seed` inside `fork_rng` on a CPU copy, so the
    global RNG is untouched and the result is device-independent. Parameters of modules without
    `reset_parameters` (e.g. ViT position embeddings) get N(0, 0.02^2). Returned on the CPU."""
    net = copy.deepcopy(model).to("cpu")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        for m in net.modules():
            if m is not net and callable(getattr(m, "reset_parameters", None)):
                m.reset_parameters()
            elif m._parameters:
                with torch.no_grad():
                    for p in m._parameters.values():
                        if p is not None:
                            p.normal_(0.0, 0.02)
    return net


@register_method("bad_teacher")
class BadTeacher(UnlearningMethod):
    defaults = {
        "lr": 1e-4,               # paper/code: Adam 1e-4
        "epochs": 1,              # paper/code
        "batch_size": 256,        # code
        "optimizer": "adam",      # paper/code
        "momentum": 0.9,          # only for optimizer sgd
        "weight_decay": 0.0,
        "temperature": 1.0,       # paper/code: KL temperature 1
        "retain_fraction": 0.3,   # paper/code: 30 % of the retain set
        "bn_train": False,        # choice: keep the original's BN statistics (code: True)
    }
    checks = {"temperature": gt(0), "retain_fraction": between(0, 1, low_open=True)}

    def access(self) -> Access:
        f = self.hp["retain_fraction"]
        return Access(forget=True, retain="full") if f >= 1 else Access(forget=True, retain="subset", fraction=f)

    def unlearn(self, model, data, ctx):
        from ..parts.losses import kd_kl

        hp, dev = self.hp, ctx.device
        xf, _ = data.forget
        xr, _ = data.retain
        if len(xf) == 0:
            raise UserError("bad_teacher: the forget set is empty")
        x = torch.cat([xf, xr])
        is_forget = torch.cat([torch.ones(len(xf), dtype=torch.bool), torch.zeros(len(xr), dtype=torch.bool)])
        good = ctx.original
        bad = reinitialised_copy(ctx.original, _reinit_seed(ctx.seed)).to(dev).eval()
        for p in bad.parameters():
            p.requires_grad_(False)
        opt = make_optimizer(model.parameters(), hp["optimizer"], hp["lr"], hp["momentum"], hp["weight_decay"])
        gen = generator(ctx.seed)
        model.train()
        set_bn_train(model, hp["bn_train"])
        log = []
        for epoch in range(hp["epochs"]):
            tot = 0.0
            for idx in iterate_batches(len(x), hp["batch_size"], gen):
                xb, fb = x[idx].to(dev), is_forget[idx].to(dev)
                with torch.no_grad():  # both teachers in eval mode: their BN statistics never move
                    target = torch.where(fb[:, None], bad(xb), good(xb))
                loss = kd_kl(model(xb), target, hp["temperature"])
                if not torch.isfinite(loss):
                    raise UserError(f"bad_teacher: loss became {loss.item()} in epoch {epoch + 1}; lower lr")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                tot += loss.item() * len(idx)
            log.append({"epoch": epoch + 1, "loss": tot / len(x)})
            ctx.log(f"bad_teacher epoch {epoch + 1}: KD loss {tot / len(x):.4f} (n={len(x)}, forget {len(xf)})")
        model.eval()
        ctx.info.update(log=log, n_forget=len(xf), n_retain=len(xr))
        return model
