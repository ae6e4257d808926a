"""Per-run cost and the Anamnesis Index: torch-free metric stages.

Cost (summed by report_study into <study>.cost.csv): a run's time is its own step (the unlearning call, or the
retrained model's training) plus the time of every artefact it consumed (noise, masks,
generators, attackers...), each read from that artefact's `*.time.json`. `time_s` (the default
time column) is that total; `time_step_s` is the unlearning step alone; speed-ups divide the
retrained model's training time by each.

AIN = relearn time of a model / relearn time of the gold model: the retrained model, or, where the
relearn settings say `gold: {epochs, retain_fraction}`, a reference-style gold model (rules
train_relearn_gold, relearn_gold). Relearn times are censored at a cap; the AIN of a capped value is
a bound, and when both are capped it is undefined. The relearn settings of the extra `relearn` are
the config's `relearn` block; those of the extra `relearn.<v>` are variant v of `relearn_variants`
over that block (`relearn_settings`, read while Snakemake builds the DAG: torch-free).
"""

from __future__ import annotations

import math
from statistics import median

from ..io import read_json, write_json
from ..keys import settings_key

# ain_*_censor: 0 exact, 1 lower bound (>=; the model hit the cap), -1 upper bound (<=; retrain hit
# the cap), 2 undefined (both capped).
EXACT, LOWER, UPPER, UNDEFINED = 0, 1, -1, 2
DEFINITIONS = ("epochs", "steps")  # the relearn definitions (metrics/relearn.py); setting `definitions` picks


def relearn_settings(config: dict, rvariant: str = "") -> dict:
    """The relearn settings of a relearn file: "" = the `relearn` block (extra `relearn`), ".<v>" = variant
    v of `relearn_variants` over it (extra `relearn.<v>`). Defaults stay the library's (metrics/relearn.py)."""
    base = config.get("relearn", {})
    return base if not rvariant else {**base, **config["relearn_variants"][rvariant[1:]]}


def relearn_gold_key(settings: dict) -> str | None:
    """The key naming the reference-style gold model of these settings; None: the retrained model is the gold."""
    gold = settings.get("gold", "retrain")
    return None if gold == "retrain" else settings_key(gold)


def ain(value: float, retrain_value: float) -> float:
    """Anamnesis index: relearn time of a model / relearn time of the retrained gold model."""
    return float(value / retrain_value) if retrain_value and retrain_value > 0 else float("nan")


def censored_ain(value: float, reached: bool, retrain_value: float, retrain_reached: bool) -> tuple[float, int]:
    """(AIN or its bound, censor code) from two possibly capped relearn times."""
    if reached and retrain_reached:
        return ain(value, retrain_value), EXACT
    if not reached and retrain_reached:
        return ain(value, retrain_value), LOWER
    if reached and not retrain_reached:
        return ain(value, retrain_value), UPPER
    return float("nan"), UNDEFINED


def run_relearn_metrics(own: str, retrain: str, out_json: str) -> None:
    a, r = read_json(own), read_json(retrain)
    m = {}
    for unit in DEFINITIONS:  # a capped relearn time is a lower bound in every table, not only in AIN
        if f"relearn_{unit}" not in a:  # not measured (relearn setting `definitions`)
            continue
        m[f"relearn_{unit}"], m[f"relearn_{unit}_reached"] = a[f"relearn_{unit}"], a[f"relearn_{unit}_reached"]
        m[f"relearn_{unit}_censor"] = EXACT if a[f"relearn_{unit}_reached"] else LOWER
        v, code = censored_ain(a[f"relearn_{unit}"], bool(a[f"relearn_{unit}_reached"]),
                               r[f"relearn_{unit}"], bool(r[f"relearn_{unit}_reached"]))
        m[f"ain_{unit}"], m[f"ain_{unit}_censor"] = v, code
    write_json(out_json, {"metrics": m})


def _seconds(record: dict) -> float:
    """A timing sidecar's seconds: the median of repeated timings when there are several."""
    reps = record.get("repeats")
    return float(median(reps)) if reps else float(record["seconds"])


def run_cost(own: list[str], artefacts: list[str], retrain: list[str]) -> dict:
    """A run's cost from timing sidecars (report_study sums them; nothing here is deterministic)."""
    own_rec = read_json(own[0]) if own else None  # none for the original model: no cost
    step = _seconds(own_rec) if own_rec else math.nan
    art = [read_json(p) for p in artefacts]
    art_s = sum(_seconds(r) for r in art)
    total = step + art_s if own_rec else math.nan
    rt = _seconds(read_json(retrain[0]))
    return {
        "time_s": total, "time_step_s": step, "time_artefacts_s": art_s if own_rec else math.nan,
        "peak_mem_mb": max([own_rec["peak_mem_mb"]] + [r.get("peak_mem_mb", 0.0) for r in art]) if own_rec else math.nan,
        "speedup": rt / total if total > 0 else math.nan,  # NaN compares False: no speed-up for the original
        "speedup_step": rt / step if step > 0 else math.nan,
        "timing_repeats": (len(own_rec.get("repeats", [])) or 1) if own_rec else 0,
        "machine": {k: own_rec.get(k) for k in ("host", "cpu", "cpu_count", "torch_threads", "device", "gpu", "numerics")
                    if own_rec and k in own_rec},
    }
