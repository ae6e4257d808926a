"""Diagonal Fisher information of a model on a set of inputs (Fisher forgetting; UISPS's parameter
importance)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap


def diag_fisher(model: nn.Module, x: torch.Tensor, batch_size: int, device) -> dict[str, torch.Tensor]:
    """E_x sum_y p(y|x) g_y(x)^2 with per-sample gradients (torch.func), eval mode."""

    model.eval()
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}

    def loss(p, xi, yi):
        return F.cross_entropy(functional_call(model, (p, buffers), (xi.unsqueeze(0),)), yi.unsqueeze(0))

    per_sample = vmap(grad(loss), in_dims=(None, 0, 0))
    acc = {k: torch.zeros_like(v) for k, v in params.items()}
    for i in range(0, len(x), batch_size):
        xb = x[i : i + batch_size].to(device)
        with torch.no_grad():
            prob = F.softmax(model(xb), dim=1)
        for c in range(prob.shape[1]):
            g = per_sample(params, xb, torch.full((len(xb),), c, dtype=torch.long, device=device))
            w = prob[:, c]
            for k in acc:
                acc[k] += torch.einsum("n,n...->...", w, g[k].pow(2))
    return {k: v / max(len(x), 1) for k, v in acc.items()}
