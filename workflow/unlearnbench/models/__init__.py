"""Model registry (timm-style): one name, one constructor, discoverable with `list_models()`.

Every constructor takes `in_channels`, `num_classes`, `image_size` plus its own keyword arguments
and returns a module with `forward_features(x)` (penultimate features) and a linear `head`.
`build_model` wraps it in a `Classifier` that normalises [0,1] pixels inside the model, so every
unlearning method works in pixel space.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from ..errors import UserError

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Decorator: register a constructor under its function name."""
    if fn.__name__ in _REGISTRY:
        raise ValueError(f"model {fn.__name__!r} registered twice")
    _REGISTRY[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    return sorted(_REGISTRY)


class Classifier(nn.Module):
    """Input normalisation + backbone. `features`/`head` are exposed for methods that need them."""

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.net = net

    @property
    def head(self) -> nn.Linear:
        return self.net.head

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_features((x - self.mean) / self.std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.head(self.forward_features(x))


def build_model(
    arch: str,
    *,
    in_channels: int,
    num_classes: int,
    image_size: int,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    **kwargs,
) -> Classifier:
    if arch not in _REGISTRY:
        raise UserError(f"unknown model {arch!r}; available: {', '.join(list_models())}")
    try:
        net = _REGISTRY[arch](in_channels=in_channels, num_classes=num_classes, image_size=image_size, **kwargs)
    except TypeError as e:
        raise UserError(f"bad arguments for model {arch!r}: {e}") from None
    mean = list(mean) if mean is not None else [0.5] * in_channels
    std = list(std) if std is not None else [0.5] * in_channels
    if len(mean) != in_channels or len(std) != in_channels:
        raise UserError(f"model {arch!r}: mean/std need {in_channels} values (one per channel)")
    return Classifier(net, mean, std)


def _import_all() -> None:
    """Import every module of this package: each registers its constructors."""
    import importlib
    import pkgutil

    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")


_import_all()
