"""Lipschitz unlearning (LU / JiT; Foster et al. 2024): zero-shot smoothing around each forget
sample. For every forget sample x, draw n noisy copies x' = x + sigma * N(0, I) and minimise
mean ||f(x) - f(x')||_2 / ||x - x'||_2 over the model outputs (logits), one sample per step, as
JiT does. Forget-only access; BatchNorm statistics frozen unless bn_train (JiT runs in train
mode, which the CLUE paper blames for LU's collapse)."""

from __future__ import annotations

from ..infra.lazy import torch
from ..runtime import generator
from ..training import make_optimizer, set_bn_train
from ._base import Access, UnlearningMethod, ge, gt, register_method


def lipschitz_loss(model, x: torch.Tensor, n_copies: int, sigma: float, gen: torch.Generator, device) -> torch.Tensor:
    """x: one or more samples [B, ...]; mean over samples and copies of ||f(x)-f(x')|| / ||x-x'||."""
    noise = sigma * torch.randn((n_copies,) + tuple(x.shape), generator=gen)
    xb = x.to(device)
    noisy = (xb.unsqueeze(0) + noise.to(device)).flatten(0, 1)
    out = model(xb)
    out_n = model(noisy).view(n_copies, len(x), -1)
    num = (out.unsqueeze(0) - out_n).norm(dim=2)
    den = noise.to(device).flatten(2).norm(dim=2).clamp_min(1e-12)
    return (num / den).mean()


@register_method("lipschitz")
class Lipschitz(UnlearningMethod):
    defaults = {"lr": 1e-4, "epochs": 1, "n_copies": 25, "sigma": 0.1, "samples_per_step": 1,
                "optimizer": "sgd", "momentum": 0.9, "weight_decay": 0.0, "bn_train": False}
    checks = {"sigma": gt(0), "n_copies": ge(1), "samples_per_step": ge(1)}

    def access(self) -> Access:
        return Access(forget=True)

    def unlearn(self, model, data, ctx):
        x, _ = data.forget
        gen = generator(ctx.seed)
        opt = make_optimizer(model.parameters(), self.hp["optimizer"], self.hp["lr"], self.hp["momentum"], self.hp["weight_decay"])
        model.train()
        set_bn_train(model, self.hp["bn_train"])
        k = self.hp["samples_per_step"]
        for _ in range(self.hp["epochs"]):
            order = torch.randperm(len(x), generator=gen)
            for i in range(0, len(x), k):
                loss = lipschitz_loss(model, x[order[i:i + k]], self.hp["n_copies"], self.hp["sigma"], gen, ctx.device)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        model.eval()
        return model
