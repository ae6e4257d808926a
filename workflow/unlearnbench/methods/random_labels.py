"""Random labels (Golatkar et al. 2020; SalUn's RL): train the forget samples towards labels drawn
uniformly from the other classes (redrawn each epoch). Forget-only by default, as the CLUE paper
adapts it; `use_retain: true` mixes in the retain set (SalUn's version, full access)."""

from __future__ import annotations

from ..infra.lazy import torch
from ._base import Access, UnlearningMethod, register_method


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
        xr, yr = data.retain if self.hp["use_retain"] else (xf[:0], yf[:0])

        from ..parts.relabel import fit_cross_entropy

        def epoch_data(epoch, gen):  # fresh random labels every epoch
            return torch.cat([xf, xr]), torch.cat([random_other_labels(yf, data.num_classes, gen), yr])

        # BN statistics only move when retain data are mixed in (forget-only batches would skew them).
        return fit_cross_entropy(model, self.hp, ctx, self.hp["bn_train"] or self.hp["use_retain"], epoch_data)
