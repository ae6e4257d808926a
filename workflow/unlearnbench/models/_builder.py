"""Model building (imported inside jobs only): the architecture registry filled by importing every
architecture module, and the `Classifier` wrapper that normalises [0,1] pixels inside the model."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from ..errors import UserError
from ._registry import _REGISTRY, list_models


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
    _import_all()
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


_imported = False


def _import_all() -> None:
    """Import every architecture module: each registers its constructors."""
    global _imported
    if _imported:
        return

    for mod in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if not mod.name.startswith("_") and mod.name != "checkpoint":
            importlib.import_module(f"{__package__}.{mod.name}")
    _imported = True
