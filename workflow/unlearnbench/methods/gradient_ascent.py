"""Gradient ascent / NegGrad (Golatkar et al. 2020; Thudi et al. 2022): maximise the cross-entropy
on the forget set. Forget-only access; BatchNorm statistics stay frozen (forget-only batches would
otherwise overwrite them).

Ascent is unbounded, so the model eventually collapses; `stop_forget_acc` stops as soon as a
forget batch's accuracy (measured before its update) falls to that value, and a non-finite loss
stops with an error.
"""

from __future__ import annotations

from ..errors import UserError
from ..infra.lazy import F, torch
from ..runtime import generator, iterate_batches
from ..training import make_optimizer, set_bn_train
from ._base import Access, UnlearningMethod, register_method


@register_method("gradient_ascent")
class GradientAscent(UnlearningMethod):
    # Adam: the CE gradient of a saturated softmax is tiny, so SGD steps either do nothing or, once
    # out of saturation, collapse the model; Adam's scale-free steps cross that cliff smoothly.
    defaults = {"lr": 1e-4, "epochs": 100, "batch_size": 64, "optimizer": "adam", "momentum": 0.0,
                "weight_decay": 0.0, "bn_train": False, "max_grad_norm": 0.0,  # 0 = no clipping
                "stop_forget_acc": None}  # early stop (%), checked on every forget batch

    def access(self) -> Access:
        return Access(forget=True)

    def unlearn(self, model, data, ctx):
        x, y = data.forget
        x, y = x.to(ctx.device), y.to(ctx.device)
        opt = make_optimizer(model.parameters(), self.hp["optimizer"], self.hp["lr"], self.hp["momentum"], self.hp["weight_decay"])
        gen = generator(ctx.seed)
        model.train()
        set_bn_train(model, self.hp["bn_train"])
        steps, stop = 0, self.hp["stop_forget_acc"]
        for epoch in range(self.hp["epochs"]):
            for idx in iterate_batches(len(y), self.hp["batch_size"], gen):
                idx = idx.to(ctx.device)
                out = model(x[idx])
                acc = (out.argmax(1) == y[idx]).float().mean().item() * 100
                if stop is not None and acc <= stop:
                    ctx.log(f"gradient_ascent: forget batch accuracy {acc:.1f}% <= {stop}% after {steps} steps; stopping")
                    ctx.info["steps"] = steps
                    model.eval()
                    return model
                loss = -F.cross_entropy(out, y[idx])
                if not torch.isfinite(loss):
                    raise UserError(f"gradient_ascent diverged (loss {loss.item()}) after {steps} steps; lower lr or set stop_forget_acc")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if self.hp["max_grad_norm"] > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), self.hp["max_grad_norm"])
                opt.step()
                steps += 1
            ctx.log(f"gradient_ascent epoch {epoch + 1}: last forget batch accuracy {acc:.1f}%")
        ctx.info["steps"] = steps
        model.eval()
        return model
