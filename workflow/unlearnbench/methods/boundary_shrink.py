"""Boundary Shrinking (BS; Chen et al., CVPR 2023): relabel every forget sample to its nearest
wrong class, found by one FGSM step (bound eps) on a frozen copy of the original model, then
fine-tune the model on the forget samples with those labels. Forget-only access."""

from __future__ import annotations

from ..infra.lazy import F, torch
from ._base import Access, UnlearningMethod, gt, register_method


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
    checks = {"eps": gt(0)}
    supports = frozenset({"class"})

    def access(self) -> Access:
        return Access(forget=True)

    def unlearn(self, model, data, ctx):
        from ..parts.relabel import fit_cross_entropy

        x, y = data.forget
        dev = ctx.device
        labels = nearest_wrong_labels(ctx.original, x, y, self.hp["eps"], dev)
        ctx.info["new_label_hist"] = torch.bincount(labels, minlength=data.num_classes).tolist()
        return fit_cross_entropy(model, self.hp, ctx, self.hp["bn_train"], lambda epoch, gen: (x, labels))
