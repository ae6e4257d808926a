"""Supervised training used for the original model, the retrained gold model and fine-tuning-style
unlearning methods. Data are in-memory tensors in [0,1]; batches are drawn with a seeded CPU
generator, so a run is reproducible on the CPU."""

from __future__ import annotations

import math
import sys
import time
from typing import Any, Callable

from .errors import UserError
from .infra.lazy import F, nn, torch
from .runtime import augment, generator, iterate_batches, predict_logits

DEFAULT_RECIPE: dict[str, Any] = {
    "optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4, "nesterov": False,
    "epochs": 30, "batch_size": 64, "schedule": "cosine", "milestones": [], "gamma": 0.1,
    "warmup_epochs": 0, "label_smoothing": 0.0, "augment": {"crop_pad": 0, "hflip": False},
}


_WARNED: set[str] = set()


def warn_once(msg: str) -> None:
    """A warning on stderr (the job's log), once per process."""
    if msg not in _WARNED:
        _WARNED.add(msg)
        print(msg, file=sys.stderr, flush=True)


def make_optimizer(params, name: str, lr: float, momentum: float = 0.9, weight_decay: float = 0.0, nesterov: bool = False,
                   betas: tuple[float, float] = (0.9, 0.999)):
    """The one place optimizers are made. Adam and AdamW run fused: the unfused step takes its square
    root through MKL's vector math, whose float32 results differ between CPUs (numerics.py)."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov and momentum > 0)
    if name in ("adam", "adamw"):
        cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
        return cls(params, lr=lr, weight_decay=weight_decay, betas=tuple(betas), fused=True)
    raise UserError(f"unknown optimizer {name!r}; use sgd, adam or adamw")


def set_bn_train(model: nn.Module, train_bn: bool) -> None:
    """Explicit BatchNorm mode: with train_bn=False running statistics stay frozen."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.train(train_bn)


def lr_factor(recipe: dict[str, Any], epoch: float) -> float:
    """Learning-rate multiplier at a (fractional) epoch."""
    warm = recipe.get("warmup_epochs", 0)
    if warm and epoch < warm:
        return (epoch + 1e-8) / warm
    sched, total = recipe.get("schedule", "constant"), recipe["epochs"]
    if sched == "cosine":
        return 0.5 * (1 + math.cos(math.pi * min(epoch - warm, total - warm) / max(total - warm, 1e-8)))
    if sched == "step":
        return recipe.get("gamma", 0.1) ** sum(epoch >= m for m in recipe.get("milestones", []))
    if sched == "constant":
        return 1.0
    raise UserError(f"unknown lr schedule {sched!r}; use cosine, step or constant")


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device) -> float:
    if len(y) == 0:
        return float("nan")
    return (predict_logits(model, x, device).argmax(1) == y).float().mean().item() * 100


def train(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    recipe: dict[str, Any],
    seed: int,
    device: torch.device,
    val: tuple[torch.Tensor, torch.Tensor] | None = None,
    desc: str = "train",
    on_batch: Callable[[nn.Module, int, torch.Tensor], None] | None = None,
    stop_after: int | None = None,
) -> list[dict[str, float]]:
    """Train `model` in place; returns one log row per epoch.

    `on_batch(model, step, idx)` is called after every optimiser step with the batch's indices into
    `x`: the hook for artefacts recorded at training time (Amnesiac's per-batch update log, the
    early-epoch state an OMP rewind needs). `stop_after=k` stops after epoch k of the same schedule
    (the state the full run has after k epochs: OMP's rewind point, re-derived exactly on the CPU).
    """
    recipe = {**DEFAULT_RECIPE, **recipe, "augment": {**DEFAULT_RECIPE["augment"], **recipe.get("augment", {})}}
    if len(y) == 0:
        raise UserError(f"{desc}: no training samples")
    model.to(device).train()
    opt = make_optimizer(model.parameters(), recipe["optimizer"], recipe["lr"], recipe["momentum"],
                         recipe["weight_decay"], recipe["nesterov"])
    gen = generator(seed)
    x_dev, y_dev = x.to(device), y.to(device)
    n, bs, epochs = len(y), int(recipe["batch_size"]), int(recipe["epochs"])
    steps_per_epoch = math.ceil(n / bs)
    if bs >= n:
        warn_once(f"warning: {desc}: batch_size {bs} is at least the {n} training samples: one optimiser step per "
                  f"epoch ({epochs} in all); lower batch_size")
    log, step = [], 0
    from tqdm import tqdm

    bar = tqdm(range(epochs), desc=desc, file=sys.stderr, disable=None, mininterval=1.0)
    for epoch in bar:
        if stop_after is not None and epoch >= stop_after:
            break
        t0, tot_loss, correct = time.perf_counter(), 0.0, 0
        for i, idx in enumerate(iterate_batches(n, bs, gen)):
            for group in opt.param_groups:
                group["lr"] = recipe["lr"] * lr_factor(recipe, epoch + i / steps_per_epoch)
            idx = idx.to(device)
            xb = augment(x_dev[idx], recipe["augment"]["crop_pad"], recipe["augment"]["hflip"], gen)
            out = model(xb)
            loss = F.cross_entropy(out, y_dev[idx], label_smoothing=recipe["label_smoothing"])
            if not torch.isfinite(loss):
                raise UserError(f"{desc}: loss became {loss.item()} at epoch {epoch}; lower the learning rate")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if on_batch is not None:
                on_batch(model, step, idx)
            tot_loss += loss.item() * len(idx)
            correct += (out.argmax(1) == y_dev[idx]).sum().item()
        row = {"epoch": epoch + 1, "loss": tot_loss / n, "train_acc": 100 * correct / n,
               "lr": opt.param_groups[0]["lr"], "seconds": time.perf_counter() - t0}
        if val is not None and len(val[1]):
            row["val_acc"] = accuracy(model, val[0], val[1], device)
        log.append(row)
        msg = f"loss={row['loss']:.3f} acc={row['train_acc']:.1f} val={row.get('val_acc', float('nan')):.1f}"
        if bar.disable:  # not a terminal (Snakemake log): one line per epoch
            print(f"{desc} epoch {epoch + 1}/{epochs} {msg}", file=sys.stderr, flush=True)
        else:
            bar.set_postfix_str(msg)
    model.eval()
    return log
