"""Config checks beyond the JSON schema, one-line error formatting, and study expansion.

The schema (workflow/schemas/config.schema.yaml, applied with snakemake.utils.validate) checks
shapes and types; `check_config` checks cross-references: every study names existing groups, every
method instance a registered method with valid hyperparameters, every model a registered
architecture, and every forget class exists in its dataset.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Iterator

from .data import NUM_CLASSES
from .errors import UserError


def format_validation_error(exc: BaseException) -> str:
    """One line from a snakemake WorkflowError wrapping a jsonschema ValidationError."""
    import jsonschema

    for arg in (exc.__cause__, exc.__context__, *getattr(exc, "args", ())):
        if isinstance(arg, jsonschema.ValidationError):
            where = ".".join(str(p) for p in arg.absolute_path) or "(top level)"
            return f"config error at {where}: {arg.message}"
    return f"config error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"


def config_hash(*blocks: Any) -> str:
    return hashlib.sha256(json.dumps(blocks, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _need(group: dict, name: str, what: str, where: str) -> dict:
    if name not in group:
        raise UserError(f"{where} names unknown {what} {name!r}; defined: {', '.join(sorted(group)) or '(none)'}")
    return group[name]


def check_config(config: dict[str, Any]) -> None:
    """Raise UserError (one line) on the first inconsistency."""
    from .methods import create_method
    from .models import list_models

    for name, m in config["models"].items():
        if m["arch"] not in list_models():
            raise UserError(f"models.{name}: unknown arch {m['arch']!r}; available: {', '.join(list_models())}")
    for name, spec in config["methods"].items():
        if name.startswith("_"):
            raise UserError(f"methods.{name}: instance names may not start with '_'")
        try:
            create_method(spec)
        except UserError as e:
            raise UserError(f"methods.{name}: {e}") from None
    for name, ds in config["datasets"].items():
        if ds["source"] == "imagefolder" and not ds.get("path"):
            raise UserError(f"datasets.{name}: source imagefolder needs a 'path' (relative to data_root)")
    for study, s in config["studies"].items():
        where = f"studies.{study}"
        setups = study_setups(s)
        if not setups:
            raise UserError(f"{where}: give dataset/model/training or a list of setups")
        for st in setups:
            _need(config["datasets"], st["dataset"], "dataset", where)
            _need(config["models"], st["model"], "model", where)
            _need(config["training"], st["training"], "training recipe", where)
        for m in s["methods"]:
            _need(config["methods"], m, "method instance", where)
        if "retrain" not in [config["methods"][m]["method"] for m in s["methods"]]:
            raise UserError(f"{where}: methods must include a 'retrain' instance (gaps are measured against it)")
        for sc in s["scenarios"]:
            scen = _need(config["scenarios"], sc, "scenario", where)
            for st in setups:
                n_classes = NUM_CLASSES.get(config["datasets"][st["dataset"]]["source"])
                if scen["type"] == "class" and n_classes is not None:
                    for c in scen["classes"]:
                        if not 0 <= c < n_classes:
                            raise UserError(f"scenarios.{sc}: forget class {c} is out of range for dataset "
                                            f"{st['dataset']} (classes 0..{n_classes - 1})")
            for m in s["methods"]:
                spec = config["methods"][m]
                cls = create_method(spec)
                if cls.kind != "reference" and scen["type"] not in cls.supports:
                    raise UserError(f"{where}: method {m} does not support {scen['type']} forgetting (scenario {sc})")


def study_setups(study: dict[str, Any]) -> list[dict[str, str]]:
    """The (dataset, model, training) combinations of a study: `setups`, or the single one given."""
    if study.get("setups"):
        return [dict(s) for s in study["setups"]]
    if all(study.get(k) for k in ("dataset", "model", "training")):
        return [{k: study[k] for k in ("dataset", "model", "training")}]
    return []


def setup_label(run: dict[str, Any]) -> str:
    return f"{run['dataset']}/{run['model']}"


def study_runs(config: dict[str, Any], study: str) -> Iterator[dict[str, Any]]:
    """Every (setup, scenario, method, seed) cell of a study."""
    s = config["studies"][study]
    for st in study_setups(s):
        for scenario in s["scenarios"]:
            for method in s["methods"]:
                for seed in s["seeds"]:
                    yield {**st, "scenario": scenario, "method": method, "seed": seed}
