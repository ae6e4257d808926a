"""Where a model looks: Grad-CAM for convolutional models, attention rollout for ViTs (figure kind
saliency_maps). Plain torch hooks, nothing else.

- Grad-CAM (Selvaraju et al. 2017): a forward hook on the last conv block keeps its activation A
  [N, K, h, w]; the gradient of the target class score y_c with respect to A gives one weight per
  channel, alpha_k = mean over (h, w) of dy_c/dA_k, and the map is ReLU(sum_k alpha_k A_k) [N, h, w].
  The "last conv block" is the last module of the forward pass whose output is a feature map
  ([N, K, h, w], not a pooling, dropout or identity layer) with h and w >= min_size: a ResNet's last
  residual block, a VGG's or All-CNN's last ReLU. min_size > 1 takes the last block whose map is at
  least that large (on small inputs the last block's map can be 2x2 or 1x1).
- Attention rollout (Abnar & Zuidema 2020) for a timm ViT: forward hooks on each block's attention
  dropout (timm computes the attention matrix explicitly once `fused_attn` is off) give A_l
  [N, heads, T, T]; with the heads averaged and the residual added, Â_l = (mean_h A_l + I) / 2
  (rows renormalised), the rollout is R = Â_L ... Â_1 and the map is the class token's row over
  the patch tokens, on the patch grid.
Maps are raw (not normalised); the figure decides the colour scale.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ...errors import UserError

_NOT_BLOCKS = (nn.Dropout, nn.Dropout2d, nn.Identity, nn.Flatten, nn.MaxPool2d, nn.AvgPool2d,
               nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


def attention_modules(model: nn.Module) -> list[nn.Module]:
    """The self-attention modules of a timm ViT (in forward order); [] for other models."""
    return [m for m in model.modules() if hasattr(m, "fused_attn") and isinstance(getattr(m, "attn_drop", None), nn.Module)]


def last_conv_block(model: nn.Module, x: torch.Tensor, min_size: int = 1) -> tuple[str, nn.Module, tuple[int, int]]:
    """(name, module, (h, w)) of the last feature-map block of the forward pass (see the module doc).
    Modules that hand on the same tensor (a residual stage and its last block; a BatchNorm and its
    in-place ReLU) are one block: the innermost name is reported, the last module is hooked, so the
    activation is taken after any in-place operation."""
    seen: list[tuple[str, nn.Module, torch.Tensor]] = []

    def record(name):
        def hook(mod, inp, out):
            if isinstance(out, torch.Tensor) and out.dim() == 4 and not isinstance(mod, _NOT_BLOCKS):
                seen.append((name, mod, out))
        return hook

    handles = [m.register_forward_hook(record(n)) for n, m in model.named_modules() if n]
    try:
        with torch.no_grad():
            model(x[:1])
    finally:
        for h in handles:
            h.remove()
    blocks: list[list] = []  # [name, last module, tensor]
    for name, mod, out in seen:
        if blocks and blocks[-1][2] is out:
            # the same tensor handed on: a container (stage) around its last block keeps the block's
            # name; a leaf (an in-place ReLU after its BatchNorm) gives its own
            blocks[-1][:2] = [blocks[-1][0] if next(mod.children(), None) is not None else name, mod]
        else:
            blocks.append([name, mod, out])
    blocks = [b for b in blocks if min(b[2].shape[-2:]) >= min_size]
    if not blocks:
        raise UserError(f"Grad-CAM: the model has no convolutional feature map of at least {min_size}x{min_size}")
    name, mod, out = blocks[-1]
    return name, mod, (int(out.shape[-2]), int(out.shape[-1]))


def grad_cam(model: nn.Module, x: torch.Tensor, target: torch.Tensor, min_size: int = 1
             ) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(maps [N, h, w] >= 0, logits [N, K], the hooked block's name) for the class scores
    logits[i, target[i]], in eval mode (the model's BatchNorm statistics are not touched)."""
    if attention_modules(model):
        raise UserError("Grad-CAM on a ViT would hook its patch embedding, not a conv block: use attention rollout")
    model.eval()
    name, block, _ = last_conv_block(model, x, min_size)
    kept = {}
    handle = block.register_forward_hook(lambda mod, inp, out: kept.__setitem__("a", out))
    try:
        with torch.enable_grad():
            xi = x.detach().clone().requires_grad_(True)  # a graph through every layer, frozen weights or not
            logits = model(xi)
            score = logits.gather(1, target.view(-1, 1).to(logits.device)).sum()
            (grad,) = torch.autograd.grad(score, kept["a"])
    finally:
        handle.remove()
    act = kept["a"].detach()
    weights = grad.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((weights * act).sum(1))
    return cam, logits.detach(), name


def attention_rollout(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(maps [N, gh, gw], logits [N, K], a description) of a timm ViT (see the module doc)."""
    attns = attention_modules(model)
    if not attns:
        raise UserError("attention rollout needs a ViT (timm attention blocks); use Grad-CAM for a CNN")
    model.eval()
    kept: list[torch.Tensor] = []
    fused = [a.fused_attn for a in attns]
    handles = [a.attn_drop.register_forward_hook(lambda mod, inp, out: kept.append(out.detach())) for a in attns]
    try:
        for a in attns:
            a.fused_attn = False  # the explicit softmax(QK^T) path, which passes the matrix through attn_drop
        with torch.no_grad():
            logits = model(x)
    finally:
        for a, f in zip(attns, fused):
            a.fused_attn = f
        for h in handles:
            h.remove()
    if len(kept) != len(attns):
        raise UserError(f"attention rollout: {len(kept)} attention matrices from {len(attns)} blocks")
    n, t = kept[0].shape[0], kept[0].shape[-1]
    eye = torch.eye(t, dtype=kept[0].dtype, device=kept[0].device).expand(n, t, t)
    roll = eye
    for a in kept:
        a = (a.mean(1) + eye) / 2
        a = a / a.sum(-1, keepdim=True)
        roll = a @ roll
    vit = next((m for m in model.modules() if hasattr(m, "patch_embed") and hasattr(m, "num_prefix_tokens")), None)
    prefix = int(getattr(vit, "num_prefix_tokens", 1))
    grid = getattr(getattr(vit, "patch_embed", None), "grid_size", None)
    patches = t - prefix
    gh, gw = (int(grid[0]), int(grid[1])) if grid is not None else (math.isqrt(patches), math.isqrt(patches))
    if gh * gw != patches:
        raise UserError(f"attention rollout: {patches} patch tokens do not form a {gh}x{gw} grid")
    maps = roll[:, 0, prefix:].reshape(n, gh, gw)
    return maps, logits, f"attention rollout over {len(kept)} blocks"


def upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Maps [N, h, w] bilinearly resized to the image size, for drawing over the image."""
    return nn.functional.interpolate(maps[:, None].float(), size=size, mode="bilinear", align_corners=False)[:, 0]
