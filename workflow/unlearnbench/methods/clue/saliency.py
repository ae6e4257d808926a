"""Weight saliency on the forget set and the gradient masks built from it (CLUE, paper 000, Eq. 6).

R(w) = |w * dL_CE/dw| for every parameter (weights, biases and norm parameters, as the reference
code), on the forget set; the mask keeps R(w) > tau ("absolute", the paper), or the top fraction q
of weights over the whole model ("top_global") or within each parameter tensor ("top_layer").
"""

from __future__ import annotations

from ...errors import UserError
from ...infra.lazy import F, nn, torch
from ...io import load_checkpoint, save_checkpoint

MASK_MODES = ("absolute", "top_global", "top_layer")
MASK_REDUCE = ("mean", "or")
MASK_KEYS = ("mask_mode", "mask_tau", "mask_fraction", "mask_reduce", "mask_batch_size")


def check_mask_settings(s: dict) -> None:
    if s["mask_mode"] not in MASK_MODES:
        raise UserError(f"mask_mode must be one of {', '.join(MASK_MODES)}, got {s['mask_mode']!r}")
    if s["mask_reduce"] not in MASK_REDUCE:
        raise UserError(f"mask_reduce must be one of {', '.join(MASK_REDUCE)}, got {s['mask_reduce']!r}")
    if s["mask_mode"] == "absolute" and not s["mask_tau"] >= 0:
        raise UserError(f"mask_tau must be >= 0, got {s['mask_tau']}")
    if s["mask_mode"] != "absolute" and not 0 < s["mask_fraction"] <= 1:
        raise UserError(f"mask_fraction must be in (0, 1], got {s['mask_fraction']}")
    if s["mask_batch_size"] < 1:
        raise UserError(f"mask_batch_size must be >= 1, got {s['mask_batch_size']}")


def saliency(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device,
             batch_size: int | None = None, per_batch: bool = False) -> list[dict[str, torch.Tensor]]:
    """|w * dCE/dw| per named parameter. per_batch=False: one dict, for the gradient of the mean CE
    over the whole set (accumulated over batches of `batch_size`); True: one dict per batch.
    The model is evaluated in eval mode (BatchNorm statistics untouched); its mode is restored."""
    was = model.training
    model.eval()
    bs = batch_size or len(y)
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    out = []
    model.zero_grad(set_to_none=True)
    for i in range(0, len(y), bs):
        xb, yb = x[i:i + bs].to(device), y[i:i + bs].to(device)
        loss = F.cross_entropy(model(xb), yb)
        (loss if per_batch else loss * len(yb) / len(y)).backward()
        if per_batch:
            out.append({n: (p.detach() * p.grad).abs() for n, p in params if p.grad is not None})
            model.zero_grad(set_to_none=True)
    if not per_batch:
        out.append({n: (p.detach() * p.grad).abs() for n, p in params if p.grad is not None})
    model.zero_grad(set_to_none=True)
    model.train(was)
    return out


def _threshold(scores: dict[str, torch.Tensor], mode: str, tau: float, fraction: float) -> dict[str, torch.Tensor]:
    if mode == "absolute":
        return {n: s > tau for n, s in scores.items()}
    if mode == "top_layer":
        masks = {}
        for n, s in scores.items():
            thr = torch.topk(s.flatten(), max(1, round(fraction * s.numel()))).values[-1]
            masks[n] = s >= thr
        return masks
    flat = torch.cat([s.flatten() for s in scores.values()])
    thr = torch.topk(flat, max(1, round(fraction * flat.numel()))).values[-1]
    return {n: s >= thr for n, s in scores.items()}


def compute_mask(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device, settings: dict) -> dict[str, torch.Tensor]:
    """Boolean mask per parameter name. reduce "mean": saliency of the mean CE over the whole
    forget set (the paper); "or": union of per-batch masks (the reference code)."""
    check_mask_settings(settings)
    mode, tau, q = settings["mask_mode"], settings["mask_tau"], settings["mask_fraction"]
    per_batch = settings["mask_reduce"] == "or"
    masks = None
    for sc in saliency(model, x, y, device, settings["mask_batch_size"], per_batch):
        m = _threshold(sc, mode, tau, q)
        masks = m if masks is None else {n: masks[n] | m[n] for n in m}
    return masks


def mask_density(masks: dict[str, torch.Tensor]) -> float:
    total = sum(m.numel() for m in masks.values())
    return float(sum(m.sum().item() for m in masks.values()) / max(total, 1))


def apply_mask_to_grads(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """M ⊙ grad in place (Eq. 7). Parameters absent from the mask get no update."""
    for n, p in model.named_parameters():
        if p.grad is None:
            continue
        m = masks.get(n)
        if m is None:
            p.grad = None
        else:
            p.grad.mul_(m.to(p.grad.device, p.grad.dtype))


def masked_step(opt: torch.optim.Optimizer, model: nn.Module, masks: dict[str, torch.Tensor] | None) -> None:
    """theta <- theta - mu (M ⊙ grad) (Eq. 7) for any optimizer: gradients are masked, and entries
    outside the mask are restored after the step so momentum or weight decay cannot move them."""
    if masks is None:
        opt.step()
        return
    apply_mask_to_grads(model, masks)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if n in masks and not bool(masks[n].all())}
    opt.step()
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n in frozen:
                p.copy_(torch.where(masks[n].to(p.device), p, frozen[n]))


def save_mask(path: str, masks: dict[str, torch.Tensor], meta: dict) -> None:

    save_checkpoint(path, {n: m.to(torch.uint8) for n, m in masks.items()}, {"kind": "mask", **meta})


def load_mask(path: str) -> tuple[dict[str, torch.Tensor], dict]:

    tensors, meta = load_checkpoint(path)
    if meta.get("kind") != "mask":
        raise UserError(f"{path} is not a saliency mask (kind {meta.get('kind')!r})")
    return {n: t.bool() for n, t in tensors.items()}, meta


def layer_densities(masks: dict[str, torch.Tensor]) -> dict[str, float]:
    return {n: float(m.float().mean()) for n, m in masks.items()}
