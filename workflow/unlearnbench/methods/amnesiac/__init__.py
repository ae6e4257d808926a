"""Amnesiac unlearning (Graves et al., "Amnesiac Machine Learning", AAAI 2021), the two forms the
MuGAN thesis lists (paper 002, Sec. 2.2.2 and Table 1).

`amnesiac` (thesis Table 1 "Amn Unlearning": needs training-time metadata): while the original
trains, the data owner logs the parameter update of every batch that holds a watched class (the
`update_log` artefact, `parts.update_log.UpdateLog`). Unlearning subtracts the logged updates of
every batch that contained a forget class, theta <- theta - sum_b delta_b, then optionally repairs
with `repair_steps` optimiser steps on retain batches (Graves: "a small amount of retraining";
0 = none, then nothing at all is read). Class requests only (the log is filtered by class).
With class forgetting nearly every batch holds a forget sample, so the undo nearly rewinds to the
initialisation (the method's documented weakness, thesis Sec. 2.2.2) and the repair does the rest.

`amnesiac_relabel` (thesis "Randomized Label Unlearning" / Table 1 "Amn (rnd)", Graves' relabelling
"Unlearning"): the forget samples get random labels of the retained classes and the model trains on
them. This is what the thesis' experiments ran under the name Amnesiac: its repository implements
no update log, only this relabelling, and the lineage of baselines it reuses (Chundawat et al.'s
bad-teaching code, Foster et al.) names this relabelling "amnesiac". Two schedules:
- mode "mixed" (default; bad-teaching/SSD code): relabelled forget set shuffled with the full
  retain set, 3 epochs, Adam 1e-4, batch 128, labels drawn once;
- mode "sequential" (the thesis repository's randomize_labels): per epoch one pass over the
  relabelled forget set (batch `forget_batch_size`, code 32) and then one pass over the retain set
  (batch `batch_size`, code 64), one optimiser; set epochs 1, batch_size 64 for the thesis' form.
`use_retain: false` trains on the relabelled forget set only (Table 1's "D_f only" reading).
For random (sample) requests the random labels are any class other than the sample's own.
"""

from __future__ import annotations

from ...errors import UserError
from ...infra.lazy import F, torch
from ...runtime import generator, iterate_batches
from ...training import make_optimizer, set_bn_train
from .._base import Access, UnlearningMethod, ge, one_of, register_method
from ..random_labels import random_other_labels


def _log_path(ctx) -> str:
    path = ctx.artefacts.get("update_log")
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            raise UserError(f"amnesiac: expected one update log, got {len(path)}")
        path = path[0]
    if not path:
        raise UserError("amnesiac needs the update_log artefact (recorded while training the original)")
    return str(path)


@register_method("amnesiac")
class Amnesiac(UnlearningMethod):
    defaults = {
        "log_classes": [],       # classes the log watches; [] = the request's forget classes (artefact key)
        "log_buffers": False,    # paper: parameter updates only; true also logs BN running statistics
        "repair_steps": 100,     # choice (Graves: "a small amount of retraining"); 0 = no repair
        "lr": 1e-3,              # choice: repair optimiser
        "optimizer": "adam",
        "momentum": 0.9,
        "weight_decay": 0.0,
        "batch_size": 64,
        "bn_train": True,        # repair batches are real retain data
    }
    checks = {"repair_steps": ge(0)}
    supports = frozenset({"class"})
    smoke = {"repair_steps": 20}
    artefacts = {"update_log": ("log_classes", "log_buffers")}

    def validate(self):
        bad = [c for c in self.hp["log_classes"] if not isinstance(c, int) or isinstance(c, bool) or c < 0]
        if bad:
            raise UserError(f"method 'amnesiac': log_classes must be class indices >= 0, got {bad[0]!r}")

    def access(self) -> Access:
        if self.hp["repair_steps"] > 0:
            return Access(retain="full")
        return Access(label_text="update log (no data)")

    def unlearn(self, model, data, ctx):
        from .update_log import UpdateLog

        hp, dev = self.hp, ctx.device
        log = UpdateLog.load(_log_path(ctx))
        if log.buffers != hp["log_buffers"]:
            raise UserError(f"amnesiac: the update log has buffers={log.buffers}, the method log_buffers={hp['log_buffers']}")
        info = log.undo(model, data.forget_classes)
        ctx.log(f"amnesiac: undid {info['steps_undone']} of {info['steps_total']} training steps "
                f"({info['steps_recorded']} recorded)")
        if hp["repair_steps"] > 0:
            xr, yr = data.retain
            opt = make_optimizer(model.parameters(), hp["optimizer"], hp["lr"], hp["momentum"], hp["weight_decay"])
            gen = generator(ctx.seed)
            model.train()
            set_bn_train(model, hp["bn_train"])
            step, tot = 0, 0.0
            while step < hp["repair_steps"]:
                for idx in iterate_batches(len(yr), hp["batch_size"], gen):
                    loss = F.cross_entropy(model(xr[idx].to(dev)), yr[idx].to(dev))
                    if not torch.isfinite(loss):
                        raise UserError(f"amnesiac: repair loss became {loss.item()}; lower lr")
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    step += 1
                    tot = loss.item()
                    if step >= hp["repair_steps"]:
                        break
            info["repair_last_loss"] = tot
        model.eval()
        ctx.info.update(info)
        return model


@register_method("amnesiac_relabel")
class AmnesiacRelabel(UnlearningMethod):
    defaults = {
        "mode": "mixed",         # code (bad-teaching/SSD "amnesiac"); "sequential" = thesis repository
        "use_retain": True,      # code
        "epochs": 3,             # code (mixed); thesis repository: 1
        "lr": 1e-4,              # code
        "optimizer": "adam",     # code
        "momentum": 0.9,
        "weight_decay": 0.0,
        "batch_size": 128,       # code (mixed); thesis repository's retain batch: 64
        "forget_batch_size": 32,  # thesis repository (sequential mode only)
        "bn_train": True,        # code: model.train(); forget-only batches (sequential) also move BN
    }
    checks = {"mode": one_of("mixed", "sequential"), "forget_batch_size": ge(1)}

    def access(self) -> Access:
        return Access(forget=True, retain="full" if self.hp["use_retain"] else None)

    def random_labels(self, y, data, gen):
        if data.request_type == "class" and data.retain_classes:
            pool = torch.tensor(data.retain_classes, dtype=torch.long)
            return pool[torch.randint(0, len(pool), y.shape, generator=gen)]

        return random_other_labels(y, data.num_classes, gen)

    def unlearn(self, model, data, ctx):
        from ...parts.relabel import ce_pass

        hp = self.hp
        xf, yf = data.forget
        xr, yr = data.retain if hp["use_retain"] else (xf[:0], yf[:0])
        gen = generator(ctx.seed)
        yf_rand = self.random_labels(yf, data, gen)  # drawn once (code)
        opt = make_optimizer(model.parameters(), hp["optimizer"], hp["lr"], hp["momentum"], hp["weight_decay"])
        model.train()
        set_bn_train(model, hp["bn_train"])

        def fit(x, y, bs):
            return ce_pass(model, opt, x, y, bs, gen, "amnesiac_relabel")

        log = []
        for epoch in range(hp["epochs"]):
            if hp["mode"] == "mixed":
                row = {"loss": fit(torch.cat([xf, xr]), torch.cat([yf_rand, yr]), hp["batch_size"])}
            else:
                row = {"forget_loss": fit(xf, yf_rand, hp["forget_batch_size"])}
                if len(yr):
                    row["retain_loss"] = fit(xr, yr, hp["batch_size"])
            log.append({"epoch": epoch + 1, **row})
        model.eval()
        ctx.info.update(log=log, n_forget=len(yf), n_retain=len(yr))
        return model
