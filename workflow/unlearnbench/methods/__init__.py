"""Unlearning methods: one file per method, one interface, one registry.

A method is a class registered with `@register_method("name")`. It declares
- `defaults`: its hyperparameters (a config instance may override any of them, nothing else);
- `access(self)`: which data it may read (`Access`); the pipeline builds an `UnlearnData` holding
  only that data, and reading anything else raises `AccessError`;
- `supports`: the forget-request types it handles ("class", "random");
- `needs`: extra artefacts made by other rules (e.g. "noise", "mask", "gan", "update_log"); the
  pipeline resolves each to a file path in `ctx.artefacts`.
`unlearn(model, data, ctx)` returns the unlearned model (it may modify `model` in place).

`original` and `retrain` are reference entries: the pipeline maps them to the trained checkpoints.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import AccessError, UserError
from ..runtime import generator, iterate_batches
from ..training import make_optimizer


# --------------------------------------------------------------------------- access contract
@dataclass(frozen=True)
class Access:
    forget: bool = False
    retain: str | None = None  # None, "full" or "subset" (a few samples per retained class)
    val: bool = False          # the held-out validation split (e.g. DAU's attacker)
    reference: str | None = None  # for original/retrain: how the reference model was obtained

    @property
    def label(self) -> str:
        if self.reference:
            return self.reference
        parts = (["forget"] if self.forget else []) + (
            ["retain"] if self.retain == "full" else ["retain-subset"] if self.retain == "subset" else []
        ) + (["val"] if self.val else [])
        return "+".join(parts) if parts else "none (zero-shot)"


class UnlearnData:
    """The data handed to a method: only what its `Access` declares. Tensors are CPU, [0,1] pixels."""

    def __init__(self, access: Access, num_classes: int, forget_classes: list[int], request_type: str,
                 forget=None, retain=None, val=None):
        self.access = access
        self.num_classes = num_classes
        self.forget_classes = list(forget_classes)  # the request itself, known to every method
        self.request_type = request_type
        self.retain_classes = [c for c in range(num_classes) if c not in self.forget_classes]
        self._sets = {"forget": forget, "retain": retain, "val": val}

    def _get(self, name: str, allowed: bool):
        if not allowed:
            raise AccessError(f"method with access '{self.access.label}' tried to read the {name} set")
        return self._sets[name]

    @property
    def forget(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._get("forget", self.access.forget)

    @property
    def retain(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._get("retain", self.access.retain is not None)

    @property
    def val(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._get("val", self.access.val)


def build_unlearn_data(access: Access, x: torch.Tensor, y: torch.Tensor, forget_idx, retain_idx, val_idx,
                       num_classes: int, forget_classes: list[int], request_type: str,
                       retain_per_class: int | None = None, seed: int = 0) -> UnlearnData:
    """Slice the pooled data down to what `access` allows (undeclared sets are never materialised)."""
    def take(idx):
        idx = torch.as_tensor(np.asarray(idx), dtype=torch.long)
        return x[idx], y[idx]

    retain = None
    if access.retain == "full":
        retain = take(retain_idx)
    elif access.retain == "subset":
        if not retain_per_class:
            raise UserError("a method with retain-subset access must set retain_per_class")
        rng = np.random.default_rng(seed)
        retain_idx = np.asarray(retain_idx)
        ry = y[torch.as_tensor(retain_idx)].numpy()
        chosen = [rng.permutation(retain_idx[ry == c])[:retain_per_class] for c in np.unique(ry)]
        retain = take(np.sort(np.concatenate(chosen)))
    return UnlearnData(
        access, num_classes, forget_classes, request_type,
        forget=take(forget_idx) if access.forget else None,
        retain=retain,
        val=take(val_idx) if access.val else None,
    )


@dataclass
class Context:
    device: torch.device
    seed: int
    original: nn.Module  # frozen copy of the original model (teacher / reference), eval mode
    artefacts: dict[str, str] = field(default_factory=dict)
    log: Callable[[str], None] = print
    info: dict[str, Any] = field(default_factory=dict)  # method-specific numbers for the run record


# --------------------------------------------------------------------------- base class + registry
class UnlearningMethod:
    name: ClassVar[str] = ""
    kind: ClassVar[str] = "method"  # or "reference"
    defaults: ClassVar[dict[str, Any]] = {}
    supports: ClassVar[frozenset[str]] = frozenset({"class", "random"})
    needs: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **hparams: Any):
        unknown = sorted(set(hparams) - set(self.defaults))
        if unknown:
            raise UserError(f"method {self.name!r} has no hyperparameter {unknown[0]!r}; "
                            f"known: {', '.join(sorted(self.defaults)) or '(none)'}")
        self.hp = copy.deepcopy(self.defaults)
        for k, v in hparams.items():
            d = self.defaults[k]
            if isinstance(d, bool) and not isinstance(v, bool):
                raise UserError(f"method {self.name!r}: {k} must be true/false, got {v!r}")
            if isinstance(d, (int, float)) and not isinstance(d, bool) and v is not None:
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise UserError(f"method {self.name!r}: {k} must be a number, got {v!r}")
                v = type(d)(v) if not (isinstance(d, int) and isinstance(v, float) and not v.is_integer()) else v
            self.hp[k] = v

    def access(self) -> Access:  # pragma: no cover - every method overrides
        raise NotImplementedError

    @property
    def retain_per_class(self) -> int | None:
        return self.hp.get("retain_per_class")

    def unlearn(self, model: nn.Module, data: UnlearnData, ctx: Context) -> nn.Module:  # pragma: no cover
        raise NotImplementedError


_METHODS: dict[str, type[UnlearningMethod]] = {}


def register_method(name: str):
    def deco(cls: type[UnlearningMethod]) -> type[UnlearningMethod]:
        if name in _METHODS:
            raise ValueError(f"method {name!r} registered twice")
        cls.name = name
        _METHODS[name] = cls
        return cls
    return deco


def list_methods() -> list[str]:
    return sorted(_METHODS)


def get_method(name: str) -> type[UnlearningMethod]:
    if name not in _METHODS:
        raise UserError(f"unknown unlearning method {name!r}; available: {', '.join(list_methods())}")
    return _METHODS[name]


def create_method(spec: dict[str, Any]) -> UnlearningMethod:
    """Instantiate from a config instance: {'method': <registered name>, <hyperparameters>...}."""
    spec = dict(spec)
    return get_method(spec.pop("method"))(**spec)


def set_bn_train(model: nn.Module, train_bn: bool) -> None:
    """Explicit BatchNorm mode: with train_bn=False running statistics stay frozen."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.train(train_bn)


def fit_cross_entropy(model: nn.Module, hp: dict[str, Any], ctx: Context, bn_train: bool,
                      epoch_data: Callable[[int, torch.Generator], tuple[torch.Tensor, torch.Tensor]]) -> nn.Module:
    """Minimise the CE on `epoch_data(epoch, gen)` -> (x, labels) for hp["epochs"] epochs.

    The loop shared by relabelling methods (random labels, boundary shrinking/expanding): optimiser
    from hp (optimizer, lr, momentum, weight_decay), shuffled batches of hp["batch_size"] drawn from
    one generator seeded with ctx.seed, explicit BatchNorm mode.
    """
    opt = make_optimizer(model.parameters(), hp["optimizer"], hp["lr"], hp["momentum"], hp["weight_decay"])
    gen = generator(ctx.seed)
    model.train()
    set_bn_train(model, bn_train)
    for epoch in range(hp["epochs"]):
        x, y = epoch_data(epoch, gen)
        for idx in iterate_batches(len(y), hp["batch_size"], gen):
            loss = F.cross_entropy(model(x[idx].to(ctx.device)), y[idx].to(ctx.device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    model.eval()
    return model


def _import_all() -> None:
    """Import every module of this package: each registers its method (one file per method)."""
    import importlib
    import pkgutil

    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")


_import_all()
