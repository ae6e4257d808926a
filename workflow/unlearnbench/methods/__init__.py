"""Unlearning methods: one file per method, one interface (`_base.py`), one registry.

Importing this package imports every method module (each registers its class) and never torch:
the DAG reads the declarations. `list_methods()` lists the registered names.

A method kept outside the tree registers itself the same way: name its module (importable from
PYTHONPATH) in `UNLEARNBENCH_METHOD_MODULES` (comma-separated); Snakemake and every job import it.
"""

from __future__ import annotations

import importlib
import os
import pkgutil

from ._base import (COMMON_CHECKS, Access, Check, Context, UnlearnData, UnlearningMethod, between, coerce,
                    create_method, ge, get_method, gt, list_methods, one_of, pattern, register_method)

__all__ = ["COMMON_CHECKS", "Access", "Check", "Context", "UnlearnData", "UnlearningMethod", "between", "coerce",
           "create_method", "ge", "get_method", "gt", "list_methods", "one_of", "pattern", "register_method"]


def _import_all() -> None:

    for mod in pkgutil.iter_modules(__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")
    for name in filter(None, (m.strip() for m in os.environ.get("UNLEARNBENCH_METHOD_MODULES", "").split(","))):
        importlib.import_module(name)  # the user's own methods (module docstring)


_import_all()
