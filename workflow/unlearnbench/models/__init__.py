"""Model registry (timm-style): one name, one constructor, discoverable with `list_models()`.

Every constructor takes `in_channels`, `num_classes`, `image_size` plus its own keyword arguments
and returns a module with `forward_features(x)` (penultimate features) and a linear `head`.
`build_model` wraps it in a `Classifier` that normalises [0,1] pixels inside the model, so every
unlearning method works in pixel space.

This module is torch-free: `list_models()` and `model_arguments()` read the architecture files'
source (every function decorated `@register_model`), so the config is checked when Snakemake
builds the DAG without importing torch; `build_model` imports the architectures inside a job.
"""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

_REGISTRY: dict[str, Callable[..., Any]] = {}
BUILD_ARGS = ("in_channels", "num_classes", "image_size")


def register_model(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator: register a constructor under its function name."""
    if fn.__name__ in _REGISTRY:
        raise ValueError(f"model {fn.__name__!r} registered twice")
    _REGISTRY[fn.__name__] = fn
    return fn


@lru_cache(maxsize=1)
def _declared() -> dict[str, tuple[str, ...]]:
    """{arch: its keyword arguments} of every `@register_model` function in this package's files."""
    out = {}
    for path in sorted(Path(__file__).parent.glob("*.py")):
        if path.name.startswith("_"):
            continue
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and any(
                    isinstance(d, ast.Name) and d.id == "register_model" for d in node.decorator_list):
                args = [a.arg for a in node.args.args + node.args.kwonlyargs]
                out[node.name] = tuple(a for a in args if a not in BUILD_ARGS)
    return out


def list_models() -> list[str]:
    return sorted(_declared())


def model_arguments(arch: str) -> tuple[str, ...]:
    """The keyword arguments an architecture accepts (besides in_channels, num_classes, image_size)."""
    return _declared()[arch]


def build_model(arch: str, **kwargs):
    """Build a registered architecture wrapped in a Classifier (imports torch)."""
    from ._builder import build_model as _build

    return _build(arch, **kwargs)
