"""Unlearning methods: one file per method, one interface (`_base.py`), one registry.

Importing this package imports every method module (each registers its class) and never torch:
the DAG reads the declarations. `list_methods()` lists the registered names.
"""

from __future__ import annotations

import importlib
import pkgutil

from ._base import (COMMON_CHECKS, Access, Check, Context, UnlearnData, UnlearningMethod, between, coerce,
                    create_method, ge, get_method, gt, list_methods, one_of, pattern, register_method)

__all__ = ["COMMON_CHECKS", "Access", "Check", "Context", "UnlearnData", "UnlearningMethod", "between", "coerce",
           "create_method", "ge", "get_method", "gt", "list_methods", "one_of", "pattern", "register_method"]


def _import_all() -> None:

    for mod in pkgutil.iter_modules(__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")


_import_all()
