"""Influence unlearning (IU; Izzo et al. 2021, WoodFisher form as in Jia et al. 2023), adapted to
forget-only access as in the CLUE paper: one Newton-style step that removes the forget set's
influence, theta <- theta + alpha * F^-1 g_f, where g_f is the gradient of the summed forget loss
divided by the training-set size proxy |D_f| (we have no retain data) and F the damped empirical
Fisher of per-sample forget gradients, F = lambda I + (1/N) sum_i g_i g_i^T. F^-1 g_f is computed
exactly with the Woodbury identity (what WoodFisher's rank-one recursion computes), O(N^2 P).
Per-sample gradients of at most `num_samples` forget samples are used for F.
"""

from __future__ import annotations

from ..infra.lazy import F, torch
from ..runtime import generator
from ._base import Access, UnlearningMethod, ge, gt, register_method


def flat_grad(model, loss) -> torch.Tensor:
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).flatten() for g, p in zip(grads, params)])


def woodbury_inverse_vp(G: torch.Tensor, v: torch.Tensor, damping: float) -> torch.Tensor:
    """(lambda I + G^T G / N)^-1 v for G [N, P] (rows = per-sample gradients)."""
    n = G.shape[0]
    small = n * damping * torch.eye(n, dtype=G.dtype, device=G.device) + G @ G.T
    return (v - G.T @ torch.linalg.solve(small, G @ v)) / damping


@register_method("influence")
class InfluenceUnlearning(UnlearningMethod):
    defaults = {"alpha": 10.0, "damping": 1e-3, "num_samples": 128, "grad_batch_size": 256}
    checks = {"alpha": ge(0), "damping": gt(0), "num_samples": ge(1), "grad_batch_size": ge(1)}

    def access(self) -> Access:
        return Access(forget=True)

    def unlearn(self, model, data, ctx):
        x, y = data.forget
        dev = ctx.device
        model.eval()  # gradients with frozen BatchNorm statistics
        gen = generator(ctx.seed)
        sub = torch.randperm(len(y), generator=gen)[: self.hp["num_samples"]]
        G = torch.stack([flat_grad(model, F.cross_entropy(model(x[i:i + 1].to(dev)), y[i:i + 1].to(dev))) for i in sub.tolist()])
        g = torch.zeros(G.shape[1], device=dev)
        bs = self.hp["grad_batch_size"]
        for i in range(0, len(y), bs):
            g += flat_grad(model, F.cross_entropy(model(x[i:i + bs].to(dev)), y[i:i + bs].to(dev), reduction="sum"))
        g /= len(y)
        step = self.hp["alpha"] * woodbury_inverse_vp(G, g, self.hp["damping"])
        with torch.no_grad():
            offset = 0
            for p in model.parameters():
                if p.requires_grad:
                    p.add_(step[offset:offset + p.numel()].view_as(p))
                    offset += p.numel()
        ctx.info.update({"step_norm": float(step.norm()), "grad_norm": float(g.norm()), "n_fisher": int(G.shape[0])})
        return model
