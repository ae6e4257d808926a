"""FineTune (Golatkar et al. 2020; UNSIR's baseline): keep training on the retain set only, so the
forgotten data fade through catastrophic forgetting."""

from __future__ import annotations

from ..training import train
from ._base import Access, UnlearningMethod, register_method


@register_method("finetune")
class FineTune(UnlearningMethod):
    defaults = {"lr": 0.02, "epochs": 5, "batch_size": 64, "optimizer": "sgd", "momentum": 0.9,
                "weight_decay": 5e-4, "schedule": "constant"}

    def access(self) -> Access:
        return Access(retain="full")

    def unlearn(self, model, data, ctx):
        x, y = data.retain
        recipe = {k: self.hp[k] for k in ("lr", "epochs", "batch_size", "optimizer", "momentum", "weight_decay", "schedule")}
        ctx.info["log"] = train(model, x, y, recipe, ctx.seed, ctx.device, desc="finetune")
        return model
