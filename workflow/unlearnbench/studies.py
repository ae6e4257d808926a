"""Study and figure expansion: the cells (setup, scenario, method instance, seed) a study or a figure
covers. Pure functions of the config dict (a leaf: the DAG, the tuning and the reports read them)."""

from __future__ import annotations

from typing import Any, Iterator

from .errors import UserError


def noise_floor_method(config: dict[str, Any], study: str) -> str:
    """The independent-retrain instance added to a study (retrain vs retrain: the gold standard's noise):
    the one its `noise_floor` names, else the first trained one (retrain, replica >= 1, no seed_cycle)."""
    named = config["studies"][study].get("noise_floor", True)
    if isinstance(named, str):
        spec = config["methods"].get(named)
        if spec is None or spec.get("method") != "retrain" or not spec.get("replica"):
            raise UserError(f"studies.{study}.noise_floor: {named!r} is not a retrain instance with replica >= 1, "
                            f"e.g. methods.{named}: {{method: retrain, replica: 1}}")
        return named
    for name, spec in config["methods"].items():
        if spec["method"] == "retrain" and spec.get("replica", 0) and not spec.get("seed_cycle"):
            return name
    raise UserError(f"studies.{study}: the noise-floor row needs a second retrain instance, e.g. "
                    "methods.retrain_indep: {method: retrain, replica: 1}; or set noise_floor: false")


def study_setups(study: dict[str, Any]) -> list[dict[str, str]]:
    """The (dataset, model, training) combinations of a study: `setups`, or the single one given."""
    if study.get("setups"):
        return [dict(s) for s in study["setups"]]
    if all(study.get(k) for k in ("dataset", "model", "training")):
        return [{k: study[k] for k in ("dataset", "model", "training")}]
    return []


def study_methods(config: dict[str, Any], study: str) -> list[str]:
    """The study's method instances, plus the independent retrain (noise floor) unless switched off."""
    s = config["studies"][study]
    methods = list(s["methods"])
    if s.get("noise_floor", True):
        floor = noise_floor_method(config, study)
        if floor not in methods:
            at = next((i + 1 for i, m in enumerate(methods) if config["methods"][m]["method"] == "retrain"), len(methods))
            methods.insert(at, floor)
    return methods


def study_runs(config: dict[str, Any], study: str) -> Iterator[dict[str, Any]]:
    """Every (setup, scenario, method, seed) cell of a study."""
    s = config["studies"][study]
    for st in study_setups(s):
        for scenario in s["scenarios"]:
            for method in study_methods(config, study):
                for seed in s["seeds"]:
                    yield {**st, "scenario": scenario, "method": method, "seed": seed}


def figure_runs(config: dict[str, Any], figure: str) -> Iterator[dict[str, Any]]:
    """The runs a figure draws: its study's runs filtered by `select` (setups as indices into the
    study's setups, scenarios, methods, seeds), in the study's order."""
    f = config["figures"][figure]
    sel = f.get("select", {})
    setups = study_setups(config["studies"][f["study"]])
    keep_setups = [setups[i] for i in sel["setups"]] if "setups" in sel else setups
    for r in study_runs(config, f["study"]):
        if {k: r[k] for k in ("dataset", "model", "training")} not in keep_setups:
            continue
        if all(r[key] in sel[name] for key, name in (("scenario", "scenarios"), ("method", "methods"), ("seed", "seeds"))
               if name in sel):
            yield r
