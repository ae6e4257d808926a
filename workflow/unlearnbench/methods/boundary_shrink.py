"""Boundary Shrinking (BS; Chen et al., CVPR 2023): relabel every forget sample to its nearest
wrong class, found by one FGSM step (bound eps) on a frozen copy of the original model, then
fine-tune the model on the forget samples with those labels. Forget-only access."""

import torch
import torch.nn.functional as F

from ..errors import UserError
from . import Access, UnlearningMethod, fit_cross_entropy, register_method


def nearest_wrong_labels(frozen, x: torch.Tensor, y: torch.Tensor, eps: float, device, batch_size: int = 256) -> torch.Tensor:
    """argmax over classes != y of the frozen model's logits on x + eps * sign(grad_x CE) (FGSM)."""
    out = []
    for i in range(0, len(y), batch_size):
        xb = x[i:i + batch_size].to(device).requires_grad_(True)
        yb = y[i:i + batch_size].to(device)
        grad, = torch.autograd.grad(F.cross_entropy(frozen(xb), yb), xb)
        with torch.no_grad():
            logits = frozen((xb + eps * grad.sign()).clamp(0, 1))
            logits[torch.arange(len(yb)), yb] = float("-inf")
            out.append(logits.argmax(1).cpu())
    return torch.cat(out)


@register_method("boundary_shrink")
class BoundaryShrink(UnlearningMethod):
    defaults = {"eps": 0.1, "lr": 1e-3, "epochs": 5, "batch_size": 64, "optimizer": "sgd", "momentum": 0.9,
                "weight_decay": 0.0, "bn_train": False}
    supports = frozenset({"class"})

    def __init__(self, **hp):
        super().__init__(**hp)
        if self.hp["eps"] <= 0:
            raise UserError(f"boundary_shrink: eps must be > 0, got {self.hp['eps']}")

    def access(self) -> Access:
        return Access(forget=True)

    def unlearn(self, model, data, ctx):
        x, y = data.forget
        dev = ctx.device
        labels = nearest_wrong_labels(ctx.original, x, y, self.hp["eps"], dev)
        ctx.info["new_label_hist"] = torch.bincount(labels, minlength=data.num_classes).tolist()
        return fit_cross_entropy(model, self.hp, ctx, self.hp["bn_train"], lambda epoch, gen: (x, labels))
