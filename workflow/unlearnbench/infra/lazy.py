"""Lazy module handles, so that modules read while Snakemake builds the DAG do not import torch.

`torch = lazy("torch")` behaves like the module but imports it on first attribute access (inside a
job, never at DAG time). Method files import torch this way; classes deriving from `nn.Module`
therefore live in `models/` or `parts/`, which are imported only inside jobs.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    __slots__ = ("_name", "_module")

    def __init__(self, name: str):
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r} ({'loaded' if self._module else 'not loaded'})>"


def lazy(name: str) -> Any:
    return LazyModule(name)


torch = lazy("torch")
nn = lazy("torch.nn")
F = lazy("torch.nn.functional")
