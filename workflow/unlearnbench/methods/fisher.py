"""Fisher forgetting (Golatkar et al., "Eternal Sunshine of the Spotless Net", CVPR 2020); UNSIR's
Table II baseline.

The diagonal Fisher of the retain set, F = E_x sum_y p(y|x) (d CE(f(x), y) / d theta)^2 (model in
eval mode, per-sample gradients), sets the noise: each parameter is replaced by
    theta + sqrt(var) * eps,  var = alpha * clamp(1 / (F + 1e-8), max=clamp)
following the authors' code: for weight tensors (ndim > 1) var is averaged over all but the first
dimension (one value per output unit); the classifier head uses clamp_head and, like 1-D
parameters (biases, norm scales), var x 10 (`scale_head_1d`); for class forgetting the forget
classes' head rows are set to mean 0, var 1e-4 (`zero_forget_rows`, the code's class-removal step).
Retain-only access (the forget set is not needed). `max_samples` (choice, default 0 = the whole
retain set, as the code) estimates the Fisher on a seeded random subset of that many retain
samples: the per-sample gradients (one per class per sample) dominate the cost on CPU.
"""

from __future__ import annotations

from ..infra.lazy import nn, torch
from ..runtime import generator, sqrt
from ._base import Access, UnlearningMethod, ge, gt, register_method


def _head_names(model: "nn.Module", num_classes: int) -> set[str]:
    head = getattr(model, "head", None)
    if isinstance(head, nn.Linear):
        ids = {id(p) for p in head.parameters()}
        return {k for k, p in model.named_parameters() if id(p) in ids}
    # Fallback (the code's rule): parameters whose first dimension is the number of classes.
    return {k for k, p in model.named_parameters() if p.shape[0] == num_classes}


@register_method("fisher")
class FisherForgetting(UnlearningMethod):
    defaults = {
        "alpha": 1e-6,           # noise scale (Golatkar's / SCRUB's code)
        "clamp": 1e3,            # max of 1 / Fisher per parameter
        "clamp_head": 1e2,       # max of 1 / Fisher on the classifier head
        "scale_head_1d": 10.0,   # var multiplier on the head and 1-D parameters
        "zero_forget_rows": True,
        "batch_size": 64,        # per-sample gradients are computed in chunks of this size
        "max_samples": 0,        # Fisher on this many retain samples (0 = all; choice)
    }

    checks = {"alpha": ge(0), "clamp": gt(0), "clamp_head": gt(0), "scale_head_1d": gt(0), "max_samples": ge(0)}

    def access(self) -> Access:
        return Access(retain="full")

    def unlearn(self, model, data, ctx):
        from ..parts.fisher_diag import diag_fisher

        x, _ = data.retain
        gen = generator(ctx.seed)
        if 0 < self.hp["max_samples"] < len(x):
            x = x[torch.randperm(len(x), generator=gen)[: self.hp["max_samples"]]]
        fisher = diag_fisher(model, x, self.hp["batch_size"], ctx.device)
        heads = _head_names(model, data.num_classes)
        stats = {}
        with torch.no_grad():
            for k, p in model.named_parameters():
                is_head = k in heads
                var = (1.0 / (fisher[k] + 1e-8)).clamp(max=self.hp["clamp_head"] if is_head else self.hp["clamp"])
                var = self.hp["alpha"] * var
                if p.ndim > 1:
                    var = var.flatten(1).mean(1).view(-1, *([1] * (p.ndim - 1))).expand_as(p).clone()
                mu = p.detach().clone()
                if is_head and data.request_type == "class" and self.hp["zero_forget_rows"]:
                    mu[data.forget_classes] = 0
                    var[data.forget_classes] = 1e-4
                if is_head or p.ndim == 1:
                    var = var * self.hp["scale_head_1d"]
                eps = torch.randn(p.shape, generator=gen).to(p.device)
                p.copy_(mu + sqrt(var) * eps)
                stats[k] = float(sqrt(var).mean())
        ctx.info["noise_std_mean"] = sum(stats.values()) / max(len(stats), 1)
        ctx.info["n_retain"] = len(x)
        model.eval()
        return model
