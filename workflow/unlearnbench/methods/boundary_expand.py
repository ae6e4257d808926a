"""Boundary Expanding (BE; Chen et al., CVPR 2023): add a shadow output neuron, train the forget
samples into it (so they leave their class's region), then prune the shadow neuron. Forget-only
access. Unlike the reference code (one step, never pruned), this trains `epochs` epochs and the
returned model has the original head shape."""

from __future__ import annotations

from ..infra.lazy import nn, torch
from ._base import Access, UnlearningMethod, register_method


def _head_parent(model: "nn.Module") -> tuple["nn.Module", str]:
    """The module and attribute holding the classifier head (Classifier wraps the backbone as .net)."""
    owner = getattr(model, "net", model)
    if not isinstance(getattr(owner, "head", None), nn.Linear):
        raise TypeError("boundary_expand needs a model with a linear `head`")
    return owner, "head"


def expand_head(model: "nn.Module") -> "nn.Linear":
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


def prune_head(model: "nn.Module") -> None:
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
        from ..parts.relabel import fit_cross_entropy

        x, _ = data.forget
        expand_head(model)
        shadow = torch.full((len(x),), data.num_classes, dtype=torch.long)
        fit_cross_entropy(model, self.hp, ctx, self.hp["bn_train"], lambda epoch, gen: (x, shadow))
        prune_head(model)
        return model.eval()
