"""Random labels (Golatkar et al. 2020; SalUn's RL): train the forget samples towards labels drawn
uniformly from the other classes (redrawn each epoch). Forget-only by default, as the CLUE paper
adapts it; `use_retain: true` mixes in the retain set (SalUn's version, full access)."""

import torch
import torch.nn.functional as F

from ..runtime import generator, iterate_batches
from ..training import make_optimizer
from . import Access, UnlearningMethod, register_method, set_bn_train


def random_other_labels(y: torch.Tensor, num_classes: int, gen: torch.Generator) -> torch.Tensor:
    """A label != y for every sample, uniform over the other num_classes - 1 classes."""
    shift = torch.randint(1, num_classes, y.shape, generator=gen)
    return (y + shift) % num_classes


@register_method("random_labels")
class RandomLabels(UnlearningMethod):
    defaults = {"lr": 1e-2, "epochs": 5, "batch_size": 64, "optimizer": "sgd", "momentum": 0.9,
                "weight_decay": 0.0, "use_retain": False, "bn_train": False}

    def access(self) -> Access:
        return Access(forget=True, retain="full" if self.hp["use_retain"] else None)

    def unlearn(self, model, data, ctx):
        xf, yf = data.forget
        if self.hp["use_retain"]:
            xr, yr = data.retain
        else:
            xr, yr = xf[:0], yf[:0]
        opt = make_optimizer(model.parameters(), self.hp["optimizer"], self.hp["lr"], self.hp["momentum"], self.hp["weight_decay"])
        gen = generator(ctx.seed)
        model.train()
        # BN statistics only move when retain data are mixed in (forget-only batches would skew them).
        set_bn_train(model, self.hp["bn_train"] or self.hp["use_retain"])
        for epoch in range(self.hp["epochs"]):
            x = torch.cat([xf, xr])
            y = torch.cat([random_other_labels(yf, data.num_classes, gen), yr])
            for idx in iterate_batches(len(y), self.hp["batch_size"], gen):
                out = model(x[idx].to(ctx.device))
                loss = F.cross_entropy(out, y[idx].to(ctx.device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        model.eval()
        return model
