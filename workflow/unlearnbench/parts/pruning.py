"""One-shot magnitude pruning (OMP) with weight rewinding, as in Unlearn-Sparse (Jia et al. 2023,
code `pruner.pruning_model` + `main_imp.py --prune_type rewind_lt`), and masks that stay enforced
through any later training or unlearning loop.

OMP (a stage, `run_prune_original`):
1. mask = global unstructured L1 magnitude pruning of the trained original: over the weights of
   every `nn.Conv2d` together (default; `include_linear=True` adds every `nn.Linear` weight; biases,
   norm parameters and, by default, the classifier head stay dense, as the reference code), the
   round(sparsity * n) smallest |w| are pruned (torch's `L1Unstructured` count; ties broken by a
   stable sort, so the mask is deterministic);
2. rewind: the whole state of the early-epoch checkpoint (every parameter and BatchNorm buffer,
   as the code's `load_state_dict(initalization)`) is loaded and the mask applied, so surviving
   weights equal their epoch-k values exactly and pruned ones are 0;
3. retrain with the original's recipe and the mask enforced (`train_with_mask`).
   Choice: the learning-rate schedule restarts at epoch 0 (our cosine schedule cannot be shifted);
   the code also "rewinds the learning rate" by stepping its MultiStepLR k times, which for a
   step schedule is milestones - k: `lr_rewind=True` does that (step/constant schedules only).
The early-epoch state comes from training the original with `on_batch=keep_state_at(step)`
(`training.train` calls on_batch(model, step, idx) after every optimiser step; `chain` combines
callbacks); `rewind_step(n_train, batch_size, k)` = k * ceil(n / bs) is the step that ends epoch k
(the last partial batch of an epoch is kept).
Epoch 0 (lottery-ticket rewinding to the initialisation) is the model before training.

Enforcing a mask (`enforce_mask(model, mask) -> MaskHandle`) keeps parameter names (no
`weight_orig`/`weight_mask` reparametrisation as torch.nn.utils.prune would):
- a gradient hook on every masked parameter zeroes the pruned entries of its gradient (also for
  `torch.autograd.grad`), so SGD (momentum, weight decay, Nesterov), Adam and AdamW leave the
  pruned zeros at exactly zero;
- a forward pre-hook on every module owning a masked parameter re-zeroes pruned entries before each
  forward through it (`.data.masked_fill_`: no autograd version bump, and a no-op on the values
  when they are already 0), so a method that writes parameters directly (noise, load_state_dict,
  even reassigning the Parameter) never computes with non-zero pruned weights;
- `handle.remove()` removes the hooks and applies the mask a last time. The handle is also a
  context manager. A deep copy of the model carries the forward pre-hooks (they act on the module
  they are called with) but not the gradient hooks.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ..data import to_float
from ..errors import UserError
from ..io import load_checkpoint, read_json, read_npz, save_checkpoint, write_json
from ..keys import config_hash
from ..models.checkpoint import load_model, model_meta, new_model, save_model, write_outputs
from ..runtime import Job, seed_everything
from ..training import accuracy, train

MASK_KIND = "omp_mask"


# --------------------------------------------------------------------------- masks
def prunable(model: nn.Module, include_linear: bool = False) -> list[tuple[str, nn.Parameter]]:
    """(name, weight) of every Conv2d (and, with include_linear, Linear) in named_parameters order."""
    types = (nn.Conv2d, nn.Linear) if include_linear else (nn.Conv2d,)
    owners = {id(m.weight) for m in model.modules() if isinstance(m, types) and m.weight is not None}
    return [(n, p) for n, p in model.named_parameters() if id(p) in owners]


def omp_mask(model: nn.Module, sparsity: float, include_linear: bool = False) -> dict[str, torch.Tensor]:
    """Global unstructured L1 magnitude mask {parameter name: bool tensor, True = kept}."""
    if not 0 <= float(sparsity) < 1:
        raise UserError(f"pruning: sparsity must be in [0, 1), got {sparsity}")
    params = prunable(model, include_linear)
    if not params:
        raise UserError("pruning: the model has no Conv2d weights to prune; set include_linear or use another model")
    flat = torch.cat([p.detach().abs().flatten().float().cpu() for _, p in params])
    n_prune = int(round(float(sparsity) * flat.numel()))
    keep = torch.ones(flat.numel(), dtype=torch.bool)
    if n_prune:
        keep[torch.argsort(flat, stable=True)[:n_prune]] = False
    masks, i = {}, 0
    for name, p in params:
        masks[name] = keep[i:i + p.numel()].view_as(p).clone()
        i += p.numel()
    return masks


def mask_sparsity(mask: dict[str, torch.Tensor]) -> float:
    """Fraction of pruned (False) entries over every masked tensor."""
    total = sum(m.numel() for m in mask.values())
    return float(sum((~m).sum().item() for m in mask.values()) / max(total, 1))


def _params(model: nn.Module, mask: dict[str, torch.Tensor]) -> dict[str, nn.Parameter]:
    named = dict(model.named_parameters())
    missing = sorted(set(mask) - set(named))
    if missing:
        raise UserError(f"pruning: the mask names parameter {missing[0]!r}, which the model does not have; "
                        "the mask belongs to another architecture")
    for n, m in mask.items():
        if tuple(m.shape) != tuple(named[n].shape):
            raise UserError(f"pruning: mask {n!r} has shape {tuple(m.shape)}, parameter {tuple(named[n].shape)}")
    return {n: named[n] for n in mask}


def sparsity_of(model: nn.Module, mask: dict[str, torch.Tensor]) -> float:
    """Fraction of exact zeros among the model's weights covered by the mask."""
    ps = _params(model, mask)
    total = sum(p.numel() for p in ps.values())
    return float(sum((p.detach() == 0).sum().item() for p in ps.values()) / max(total, 1))


def mask_violations(model: nn.Module, mask: dict[str, torch.Tensor]) -> int:
    """Number of pruned positions holding a non-zero weight (0 when the mask is respected)."""
    ps = _params(model, mask)
    return int(sum(((p.detach() != 0) & ~mask[n].to(p.device)).sum().item() for n, p in ps.items()))


def layer_sparsity(mask: dict[str, torch.Tensor]) -> dict[str, float]:
    return {n: float((~m).float().mean()) for n, m in mask.items()}


@torch.no_grad()
def apply_mask(model: nn.Module, mask: dict[str, torch.Tensor]) -> None:
    """Set pruned weights to 0 in place (parameter objects and names unchanged)."""
    for n, p in _params(model, mask).items():
        p.data.masked_fill_(~mask[n].to(p.device), 0)


def rewind(model: nn.Module, early_state: dict[str, torch.Tensor], mask: dict[str, torch.Tensor]) -> nn.Module:
    """Load the early-epoch state (parameters and buffers) and apply the mask, in place."""
    try:
        model.load_state_dict(early_state)
    except RuntimeError as e:
        raise UserError(f"pruning: the early-epoch state does not fit the model: {str(e).splitlines()[0]}") from None
    apply_mask(model, mask)
    return model


# --------------------------------------------------------------------------- enforcing a mask
class _Rezero:
    """Forward pre-hook: zero the pruned entries of this module's masked parameters."""

    def __init__(self, attrs: dict[str, torch.Tensor]):
        self.pruned = attrs  # attribute name -> bool tensor, True = pruned

    def __call__(self, module: nn.Module, args: Any) -> None:
        for attr, pruned in self.pruned.items():
            w = getattr(module, attr)
            if pruned.device != w.device:
                pruned = self.pruned[attr] = pruned.to(w.device)
            w.data.masked_fill_(pruned, 0)


class _MaskGrad:
    def __init__(self, pruned: torch.Tensor):
        self.pruned = pruned

    def __call__(self, grad: torch.Tensor) -> torch.Tensor:
        if self.pruned.device != grad.device:
            self.pruned = self.pruned.to(grad.device)
        return grad.masked_fill(self.pruned, 0)


class MaskHandle:
    """Hooks that keep a mask enforced; `remove()` (or leaving the `with` block) takes them off and
    applies the mask a final time."""

    def __init__(self, model: nn.Module, mask: dict[str, torch.Tensor]):
        self.model, self.mask = model, mask
        self._handles: list[Any] = []
        ps = _params(model, mask)
        by_module: dict[str, dict[str, torch.Tensor]] = {}
        for n, p in ps.items():
            pruned = ~mask[n].to(p.device)
            if p.requires_grad:  # a frozen parameter has no gradient; the pre-hook still re-zeroes it
                self._handles.append(p.register_hook(_MaskGrad(pruned)))
            owner, _, attr = n.rpartition(".")
            by_module.setdefault(owner, {})[attr] = pruned
        for owner, attrs in by_module.items():
            module = model.get_submodule(owner)
            self._handles.append(module.register_forward_pre_hook(_Rezero(attrs)))
        apply_mask(model, mask)
        self.active = True

    def apply(self) -> None:
        apply_mask(self.model, self.mask)

    def remove(self) -> None:
        if self.active:
            for h in self._handles:
                h.remove()
            self._handles.clear()
            self.active = False
        apply_mask(self.model, self.mask)

    def __enter__(self) -> "MaskHandle":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def enforce_mask(model: nn.Module, mask: dict[str, torch.Tensor]) -> MaskHandle:
    """Apply the mask now and keep it enforced until `handle.remove()` (see module docstring)."""
    return MaskHandle(model, mask)


# --------------------------------------------------------------------------- training helpers
class KeepState:
    """`on_batch` callback for `training.train`: copies the state dict (CPU) after optimiser step
    `step`; `.state` is None until then."""

    def __init__(self, step: int):
        if int(step) < 1:
            raise UserError(f"keep_state_at: step must be >= 1 (epoch 0 is the model before training), got {step}")
        self.step = int(step)
        self.state: dict[str, torch.Tensor] | None = None

    def __call__(self, model: nn.Module, step: int, idx: torch.Tensor | None = None) -> None:
        if step == self.step:
            self.state = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}


def keep_state_at(step: int) -> KeepState:
    return KeepState(step)


def rewind_step(n_train: int, batch_size: int, epoch: int) -> int:
    """The `on_batch` step that ends epoch `epoch` (1-based) of `training.train`."""
    return int(epoch) * math.ceil(int(n_train) / int(batch_size))


def chain(*callbacks: Callable | None) -> Callable:
    """Several `on_batch` callbacks as one."""
    cbs = [c for c in callbacks if c is not None]

    def call(*args):
        for c in cbs:
            c(*args)
    return call


def rewound_recipe(recipe: dict, rewind_epoch: int) -> dict:
    """The code's learning-rate rewinding: a step schedule continues from epoch `rewind_epoch`."""
    sched = recipe.get("schedule", "cosine")
    if sched == "constant" or not rewind_epoch:
        return dict(recipe)
    if sched != "step":
        raise UserError(f"pruning: lr_rewind needs a step or constant schedule, the recipe has {sched!r}; "
                        "set lr_rewind: false")
    return {**recipe, "milestones": [max(0, int(m) - int(rewind_epoch)) for m in recipe.get("milestones", [])]}


def train_with_mask(model: nn.Module, x: torch.Tensor, y: torch.Tensor, mask: dict[str, torch.Tensor], recipe: dict,
                    seed: int, device: torch.device, val=None, desc: str = "sparse",
                    on_batch: Callable | None = None) -> list[dict]:
    """`training.train` with the mask enforced throughout (the sparse retrain after rewinding, or the
    sparse gold model: a fresh model trained from scratch on the retain set with the same mask)."""

    model.to(device)
    with enforce_mask(model, mask):
        log = train(model, x, y, recipe, seed, device, val=val, desc=desc, on_batch=on_batch)
    if mask_violations(model, mask):
        raise UserError(f"{desc}: pruned weights became non-zero; this is a bug in the mask hooks")
    return log


# --------------------------------------------------------------------------- files
def save_mask(path: str, mask: dict[str, torch.Tensor], meta: dict) -> None:

    save_checkpoint(path, {n: m.to(torch.uint8) for n, m in mask.items()},
                    {"kind": MASK_KIND, "sparsity": mask_sparsity(mask), **meta})


def load_mask(path: str) -> tuple[dict[str, torch.Tensor], dict]:
    """{parameter name: bool mask (True = kept)} and the file's metadata."""

    tensors, meta = load_checkpoint(path)
    if meta.get("kind") != MASK_KIND:
        raise UserError(f"{path} is not a pruning mask (kind {meta.get('kind')!r}); point to the *.mask.safetensors "
                        "file of rule prune_original")
    return {n: t.bool() for n, t in tensors.items()}, meta


def _strip(log: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in log]  # timings stay out of info


def run_prune_original(job: Job, data: str, split: str, original: str, dataset_spec: dict, model_spec: dict,
                       recipe: dict, prune: dict) -> None:
    """Rule prune_original: OMP mask from the trained original, rewind to its state after
    `rewind_epoch` epochs (re-derived by replaying the original's training for that many epochs:
    same seed, same schedule, so on the CPU it is the original run's early state bit for bit),
    retrain on the training split with the mask enforced; writes the sparse model checkpoint (same
    format as every model checkpoint, meta + `sparsity`, `pruning`), the mask file, a deterministic
    info JSON and the timing sidecar."""
    dev = job.start()
    seed = job.seed
    sparsity, epoch = float(prune["sparsity"]), int(prune.get("rewind_epoch", 2))
    include_linear, lr_rewind = bool(prune.get("include_linear", False)), bool(prune.get("lr_rewind", False))
    data_d, split_d = read_npz(data), read_json(split)
    orig, o_meta = load_model(original, dev)
    if o_meta["model_spec"] != model_spec:
        raise UserError(f"{original} was trained with model {o_meta['model_spec']}, not {model_spec}; rebuild it")
    x, y = to_float(data_d["x"]), torch.from_numpy(data_d["y"]).long()
    tr, va = torch.as_tensor(np.asarray(split_d["train"])), torch.as_tensor(np.asarray(split_d["val"]))
    val = (x[va], y[va])
    with job.timed() as usage:
        seed_everything(seed, job.threads)  # again (loading the original drew numbers): as train_original
        model = new_model(data_d, model_spec).to(dev)
        if epoch > 0:
            train(model, x[tr], y[tr], recipe, seed, dev, desc=f"replay to epoch {epoch}", stop_after=epoch)
        early = {k: v.detach().clone() for k, v in model.state_dict().items()}
        mask = omp_mask(orig, sparsity, include_linear)
        rewind(model, early, mask)
        acc_rewound = accuracy(model, *val, dev)
        run_recipe = rewound_recipe(recipe, epoch or 0) if lr_rewind else dict(recipe)
        log = train_with_mask(model, x[tr], y[tr], mask, run_recipe, seed, dev, val=val, desc="sparse")
    actual = sparsity_of(model, mask)
    pruning = {"method": "omp", "scope": "conv+linear" if include_linear else "conv", "target_sparsity": float(sparsity),
               "n_masked": int(sum(m.numel() for m in mask.values())),
               "n_pruned": int(sum((~m).sum().item() for m in mask.values())), "rewind_epoch": epoch, "lr_rewind": bool(lr_rewind), "mask_file": str(job.out["mask"]).rsplit("/", 1)[-1]}
    meta = model_meta(data_d, model_spec, kind="original", seed=seed, recipe=recipe, sparsity=actual, pruning=pruning,
                      config_hash=config_hash(dataset_spec, model_spec, recipe, seed, None, {"omp": pruning}))
    save_model(job.out["ckpt"], model, meta)
    save_mask(job.out["mask"], mask, {"pruning": pruning, "original_config_hash": o_meta.get("config_hash")})
    info = {"kind": "sparse_original", "sparsity": actual, "pruning": pruning, "layer_sparsity": layer_sparsity(mask),
            "val_acc_dense": accuracy(orig, *val, dev), "val_acc_rewound": acc_rewound,
            "val_acc_sparse": accuracy(model, *val, dev), "log": _strip(log), "n_train": int(len(tr))}
    write_json(job.out["info"], info)
    if job.out.get("outputs"):
        write_outputs(model, x, dev, job.out["outputs"])
    print(f"OMP {sparsity:.0%} ({pruning['scope']}): sparsity {actual:.4f}, val acc dense {info['val_acc_dense']:.2f} "
          f"-> sparse {info['val_acc_sparse']:.2f} in {usage.seconds:.1f}s", flush=True)

