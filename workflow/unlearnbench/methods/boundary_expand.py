"""Boundary Expanding (BE; Chen et al., CVPR 2023): add a shadow output neuron, train the forget
samples into it (so they leave their class's region), then prune the shadow neuron. Forget-only
access. Unlike the reference code (one step, never pruned), this trains `epochs` epochs and the
returned model has the original head shape."""

import torch
import torch.nn.functional as F
from torch import nn

from ..runtime import generator, iterate_batches
from ..training import make_optimizer
from . import Access, UnlearningMethod, register_method, set_bn_train


def _head_parent(model: nn.Module) -> tuple[nn.Module, str]:
    """The module and attribute holding the classifier head (Classifier wraps the backbone as .net)."""
    owner = getattr(model, "net", model)
    if not isinstance(getattr(owner, "head", None), nn.Linear):
        raise TypeError("boundary_expand needs a model with a linear `head`")
    return owner, "head"


def expand_head(model: nn.Module) -> nn.Linear:
    """Replace the head by one with an extra (shadow) output; returns the original head."""
    owner, attr = _head_parent(model)
    old = getattr(owner, attr)
    new = nn.Linear(old.in_features, old.out_features + 1, bias=old.bias is not None).to(old.weight.device)
    with torch.no_grad():
        new.weight[:-1].copy_(old.weight)
        if old.bias is not None:
            new.bias[:-1].copy_(old.bias)
    setattr(owner, attr, new)
    return old


def prune_head(model: nn.Module) -> None:
    """Drop the shadow output: the head gets back its original shape (the trained rows kept)."""
    owner, attr = _head_parent(model)
    wide = getattr(owner, attr)
    pruned = nn.Linear(wide.in_features, wide.out_features - 1, bias=wide.bias is not None).to(wide.weight.device)
    with torch.no_grad():
        pruned.weight.copy_(wide.weight[:-1])
        if wide.bias is not None:
            pruned.bias.copy_(wide.bias[:-1])
    setattr(owner, attr, pruned)


@register_method("boundary_expand")
class BoundaryExpand(UnlearningMethod):
    defaults = {"lr": 1e-3, "epochs": 5, "batch_size": 64, "optimizer": "sgd", "momentum": 0.9,
                "weight_decay": 0.0, "bn_train": False}
    supports = frozenset({"class"})

    def access(self) -> Access:
        return Access(forget=True)

    def unlearn(self, model, data, ctx):
        x, _ = data.forget
        dev = ctx.device
        expand_head(model)
        shadow = torch.full((len(x),), data.num_classes, dtype=torch.long)
        opt = make_optimizer(model.parameters(), self.hp["optimizer"], self.hp["lr"], self.hp["momentum"], self.hp["weight_decay"])
        gen = generator(ctx.seed)
        model.train()
        set_bn_train(model, self.hp["bn_train"])
        for _ in range(self.hp["epochs"]):
            for idx in iterate_batches(len(x), self.hp["batch_size"], gen):
                loss = F.cross_entropy(model(x[idx].to(dev)), shadow[idx].to(dev))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        prune_head(model)
        model.eval()
        return model
