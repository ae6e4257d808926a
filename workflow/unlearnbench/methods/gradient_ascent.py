"""Gradient ascent / NegGrad (Golatkar et al. 2020; Thudi et al. 2022): maximise the cross-entropy
on the forget set. Forget-only access; BatchNorm statistics stay frozen (forget-only batches would
otherwise overwrite them)."""

import torch.nn.functional as F

from ..runtime import generator, iterate_batches
from ..training import make_optimizer
from . import Access, UnlearningMethod, register_method, set_bn_train


@register_method("gradient_ascent")
class GradientAscent(UnlearningMethod):
    defaults = {"lr": 1e-3, "epochs": 5, "batch_size": 64, "optimizer": "sgd", "momentum": 0.9,
                "weight_decay": 0.0, "bn_train": False,
                "stop_forget_acc": None}  # optional early stop once batch forget accuracy <= this (%)

    def access(self) -> Access:
        return Access(forget=True)

    def unlearn(self, model, data, ctx):
        x, y = data.forget
        x, y = x.to(ctx.device), y.to(ctx.device)
        opt = make_optimizer(model.parameters(), self.hp["optimizer"], self.hp["lr"], self.hp["momentum"], self.hp["weight_decay"])
        gen = generator(ctx.seed)
        model.train()
        set_bn_train(model, self.hp["bn_train"])
        steps = 0
        for epoch in range(self.hp["epochs"]):
            correct = 0
            for idx in iterate_batches(len(y), self.hp["batch_size"], gen):
                idx = idx.to(ctx.device)
                out = model(x[idx])
                loss = -F.cross_entropy(out, y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                steps += 1
                correct += (out.argmax(1) == y[idx]).sum().item()
            acc = 100 * correct / len(y)
            ctx.log(f"gradient_ascent epoch {epoch + 1}: forget acc during epoch {acc:.1f}%")
            if self.hp["stop_forget_acc"] is not None and acc <= self.hp["stop_forget_acc"]:
                break
        ctx.info["steps"] = steps
        model.eval()
        return model
