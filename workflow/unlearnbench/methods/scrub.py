"""SCRUB (Kurmanji et al., "Towards Unbounded Machine Unlearning", NeurIPS 2023); a baseline of the
MuGAN thesis (paper 002, Eq. 8, Algorithms 2-4).

The student starts as the original model; the teacher is the frozen original. For `epochs` epochs
(the paper's STEPS, code `sgda_epochs`): while epoch <= `msteps` one max-epoch over the forget set
(ascend d(x) = KL(teacher(x)/T || student(x)/T) T^2), then one min-epoch over the retain set
(descend alpha * d(x) + gamma * CE(student(x), y)); one SGD optimiser for both, with the code's
step decay (lr * lr_decay_rate ** #{decay epochs < epoch}). d is `parts.losses.kd_kl`, which is the
code's DistillKL.

Defaults: the authors' code (CIFAR-10 class forgetting, `args.*`: sgd, lr 5e-4, momentum 0.9,
weight decay 5e-4, alpha 0.001, gamma 0.99, msteps 2, sgda_epochs 3, kd_T 4, decay epochs
[3, 5, 9] x 0.1, retain batch 128, forget batch 512). Not implemented: the code's SWA averaging
(its sstart 10 > sgda_epochs, i.e. never active) and SCRUB+R's checkpoint rewinding.

The thesis' own SCRUB (its repository's `SCRUM`) is a single pass: one min-epoch with CE + KL
weighted 1:1, then one max-epoch, plain SGD. Reach it with
    epochs: 1, msteps: 1, order: min_first, alpha: 1.0, gamma: 1.0, lr: 5.0e-5 (thesis Sec. 4.4),
    momentum: 0.0, weight_decay: 0.0, batch_size: 64, forget_batch_size: 64, bn_train_max: true.

BatchNorm: both epochs run in train mode, as in the code (`bn_train_min`, `bn_train_max`). This
matters: while the student equals the teacher the KL sits at its minimum and its gradient vanishes;
batch statistics make the student's outputs differ from the eval-mode teacher's and start the
ascent (with bn_train_max false the first max-epoch is a no-op). The forget-only batches move the
running statistics, which the following min-epoch re-estimates on retain batches (not with
order min_first, where a max-epoch comes last).
"""

from __future__ import annotations

from ..errors import UserError
from ..infra.lazy import F, torch
from ..runtime import generator, iterate_batches
from ..training import make_optimizer, set_bn_train
from ._base import Access, UnlearningMethod, ge, gt, one_of, register_method


@register_method("scrub")
class SCRUB(UnlearningMethod):
    defaults = {
        "lr": 5e-4,                    # code: sgda_learning_rate
        "epochs": 3,                   # code: sgda_epochs (paper: STEPS)
        "msteps": 2,                   # code: msteps (paper: MAX-STEPS)
        "alpha": 0.001,                # code: weight of the KL on the retain set
        "gamma": 0.99,                 # code: weight of the CE on the retain set
        "temperature": 4.0,            # code: kd_T
        "optimizer": "sgd",            # code
        "momentum": 0.9,               # code: sgda_momentum
        "weight_decay": 5e-4,          # code: sgda_weight_decay
        "lr_decay_epochs": [3, 5, 9],  # code
        "lr_decay_rate": 0.1,          # code
        "batch_size": 128,             # code: retain (min-step) batch
        "forget_batch_size": 512,      # code (large-scale class setting): forget (max-step) batch
        "order": "max_first",          # paper Alg. 2; "min_first" = the thesis' code
        "bn_train_min": True,          # code
        "bn_train_max": True,          # code (the next min-epoch refreshes the statistics)
    }
    checks = {"msteps": ge(0), "alpha": ge(0), "gamma": ge(0), "temperature": gt(0),
              "lr_decay_rate": gt(0), "forget_batch_size": ge(1), "order": one_of("max_first", "min_first")}

    def validate(self):
        bad = [e for e in self.hp["lr_decay_epochs"] if not isinstance(e, int) or isinstance(e, bool) or e < 1]
        if bad:
            raise UserError(f"method 'scrub': lr_decay_epochs must be a list of epochs >= 1, got {bad[0]!r}")
        if self.hp["alpha"] == 0 and self.hp["gamma"] == 0 and self.hp["msteps"] == 0:
            raise UserError("method 'scrub': with alpha = gamma = 0 and msteps = 0 nothing is trained")

    def access(self) -> Access:
        return Access(forget=True, retain="full")

    def lr_at(self, epoch: int) -> float:
        """The code's adjust_learning_rate for a 1-based epoch."""
        steps = sum(epoch > e for e in self.hp["lr_decay_epochs"])
        return self.hp["lr"] * self.hp["lr_decay_rate"] ** steps

    def max_epoch(self, model, teacher, x, opt, gen, dev) -> float:
        """One epoch of ascent on KL(teacher || student) over `x` (Alg. 3); returns the mean KL."""
        from ..parts.losses import kd_kl

        model.train()
        set_bn_train(model, self.hp["bn_train_max"])
        tot = 0.0
        for idx in iterate_batches(len(x), self.hp["forget_batch_size"], gen):
            xb = x[idx].to(dev)
            with torch.no_grad():
                t = teacher(xb)
            kl = kd_kl(model(xb), t, self.hp["temperature"])
            if not torch.isfinite(kl):
                raise UserError(f"scrub: forget KL became {kl.item()}; lower lr")
            opt.zero_grad(set_to_none=True)
            (-kl).backward()
            opt.step()
            tot += kl.item() * len(idx)
        return tot / max(len(x), 1)

    def min_epoch(self, model, teacher, x, y, opt, gen, dev) -> tuple[float, float]:
        """One epoch of descent on alpha KL + gamma CE over the retain set (Alg. 4)."""
        from ..parts.losses import kd_kl

        model.train()
        set_bn_train(model, self.hp["bn_train_min"])
        tot_kl = tot_ce = 0.0
        for idx in iterate_batches(len(y), self.hp["batch_size"], gen):
            xb, yb = x[idx].to(dev), y[idx].to(dev)
            with torch.no_grad():
                t = teacher(xb)
            out = model(xb)
            kl, ce = kd_kl(out, t, self.hp["temperature"]), F.cross_entropy(out, yb)
            loss = self.hp["alpha"] * kl + self.hp["gamma"] * ce
            if not torch.isfinite(loss):
                raise UserError(f"scrub: retain loss became {loss.item()}; lower lr")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tot_kl += kl.item() * len(idx)
            tot_ce += ce.item() * len(idx)
        return tot_kl / max(len(y), 1), tot_ce / max(len(y), 1)

    def unlearn(self, model, data, ctx):
        hp, dev = self.hp, ctx.device
        xf, _ = data.forget
        xr, yr = data.retain
        teacher = ctx.original  # frozen, eval mode
        opt = make_optimizer(model.parameters(), hp["optimizer"], hp["lr"], hp["momentum"], hp["weight_decay"])
        gen = generator(ctx.seed)
        log = []
        for epoch in range(1, hp["epochs"] + 1):
            for g in opt.param_groups:
                g["lr"] = self.lr_at(epoch)
            row = {"epoch": epoch, "lr": self.lr_at(epoch)}
            do_max = epoch <= hp["msteps"] and len(xf) > 0
            if do_max and hp["order"] == "max_first":
                row["forget_kl"] = self.max_epoch(model, teacher, xf, opt, gen, dev)
            row["retain_kl"], row["retain_ce"] = self.min_epoch(model, teacher, xr, yr, opt, gen, dev)
            if do_max and hp["order"] == "min_first":
                row["forget_kl"] = self.max_epoch(model, teacher, xf, opt, gen, dev)
            log.append(row)
            ctx.log("scrub epoch {epoch}: ".format(**row) + " ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "epoch"))
        model.eval()
        ctx.info.update(log=log, n_forget=len(xf), n_retain=len(yr))
        return model
