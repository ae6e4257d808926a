"""The relabel-and-train loop shared by relabelling methods (random labels, boundary shrinking and
expanding, Amnesiac-style relabelling)."""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from ..runtime import generator, iterate_batches
from ..training import make_optimizer, set_bn_train


def ce_pass(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, batch_size: int,
            gen: torch.Generator, what: str) -> float:
    """One pass of cross-entropy steps over shuffled batches of (x, y) (labels or soft targets) on the
    model's device; a non-finite loss stops with one line naming `what`. Returns the mean loss."""
    dev = next(model.parameters()).device
    tot = 0.0
    for idx in iterate_batches(len(y), batch_size, gen):
        i = idx.to(x.device)
        loss = F.cross_entropy(model(x[i].to(dev)), y[i].to(dev))
        if not torch.isfinite(loss):
            raise UserError(f"{what}: loss became {loss.item()}; lower lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        tot += loss.item() * len(idx)
    return tot / max(len(y), 1)


def fit_cross_entropy(model: nn.Module, hp: dict[str, Any], ctx: Any, bn_train: bool,
                      epoch_data: Callable[[int, torch.Generator], tuple[torch.Tensor, torch.Tensor]]) -> nn.Module:
    """Minimise the CE on `epoch_data(epoch, gen)` -> (x, labels) for hp["epochs"] epochs.

    Optimiser from hp (optimizer, lr, momentum, weight_decay), shuffled batches of hp["batch_size"]
    drawn from one generator seeded with ctx.seed, explicit BatchNorm mode.
    """
    opt = make_optimizer(model.parameters(), hp["optimizer"], hp["lr"], hp["momentum"], hp["weight_decay"])
    gen = generator(ctx.seed)
    model.train()
    set_bn_train(model, bn_train)
    for epoch in range(hp["epochs"]):
        x, y = epoch_data(epoch, gen)
        for idx in iterate_batches(len(y), hp["batch_size"], gen):
            loss = F.cross_entropy(model(x[idx].to(ctx.device)), y[idx].to(ctx.device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    model.eval()
    return model
