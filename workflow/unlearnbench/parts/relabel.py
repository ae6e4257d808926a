"""The relabel-and-train loop shared by relabelling methods (random labels, boundary shrinking and
expanding, Amnesiac-style relabelling)."""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..runtime import generator, iterate_batches
from ..training import make_optimizer, set_bn_train


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
