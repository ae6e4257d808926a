"""Torch-free per-run extra metric files (RUN_EXTRAS): AIN from two relearn measurements, and the
unlearning time including a method's artefacts (UNSIR's noise). Cheap stages, no torch import."""

from __future__ import annotations

from .io import read_json, write_json


def ain(value: float, retrain_value: float) -> float:
    """Anamnesis index: relearn time of a model / relearn time of the retrained gold model."""
    return float(value / retrain_value) if retrain_value and retrain_value > 0 else float("nan")


def run_relearn_metrics(own: str, retrain: str, out: str) -> None:
    a, r = read_json(own), read_json(retrain)
    m = {k: a[k] for k in ("relearn_epochs", "relearn_epochs_reached", "relearn_steps", "relearn_steps_reached")}
    m["ain_epochs"] = ain(a["relearn_epochs"], r["relearn_epochs"])
    m["ain_steps"] = ain(a["relearn_steps"], r["relearn_steps"])
    write_json(out, {"metrics": m})


def run_time_total(time_info: str | None, retrain_info: str, out: str) -> None:
    """Unlearning time including the method's artefacts (info.artefact_seconds) and retrain time / that."""
    info = read_json(time_info) if time_info else {"seconds": 0.0}
    total = float(info["seconds"]) + float(info.get("info", {}).get("artefact_seconds", 0.0))
    rt = float(read_json(retrain_info)["seconds"])
    write_json(out, {"metrics": {"time_total_s": total,
                                 "speedup_total": rt / total if total > 0 else float("nan")}})


def run_noise_set(classes: list[str], files: list[str], out: str) -> None:
    write_json(out, {"classes": [int(c) for c in classes], "files": dict(zip(classes, map(str, files)))})
