"""The architecture registry (torch-free): constructors decorated `@register_model`, and the
names and arguments of every registered architecture read from the architecture files' source, so
the DAG checks a model entry without importing torch."""

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


@lru_cache(maxsize=None)
def _defaults(arch: str) -> tuple[tuple[str, Any], ...]:
    """The literal default values of an architecture's keyword arguments, read from its source."""
    for path in sorted(Path(__file__).parent.glob("*.py")):
        if path.name.startswith("_"):
            continue
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and node.name == arch:
                pos = node.args.args[len(node.args.args) - len(node.args.defaults):]
                pairs = list(zip(pos, node.args.defaults)) + [(a, d) for a, d in zip(node.args.kwonlyargs, node.args.kw_defaults)
                                                              if d is not None]
                out = []
                for a, d in pairs:
                    try:
                        out.append((a.arg, ast.literal_eval(d)))
                    except ValueError:
                        pass
                return tuple(out)
    return ()


def model_defaults(arch: str) -> dict[str, Any]:
    """{argument: default} of an architecture (torch-free), besides in_channels, num_classes, image_size."""
    return {k: v for k, v in _defaults(arch) if k not in BUILD_ARGS}


def list_models() -> list[str]:
    return sorted(_declared())


def model_arguments(arch: str) -> tuple[str, ...]:
    """The keyword arguments an architecture accepts (besides in_channels, num_classes, image_size)."""
    return _declared()[arch]
