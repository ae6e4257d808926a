"""Leakage-safe hyperparameter selection (rule tune): every method of a tuning entry gets the same
budget of trials on one cell that no table reports (its own scenario and seed), and each trial is
scored on validation data and the forget set only, never on test data:

  objective = mean |trial - retrain| over acc_val (validation samples of the retained classes) and,
              for class forgetting, acc_val_forget (validation samples of the forgotten classes)
              or, for random forgetting, acc_forget (the forget set: the quantity to be forgotten)

(lower is better: the trial that behaves most like the retrained model of the same cell). An entry
with several seeds (`seed: [100, 101, 102]`) scores each trial against the retrain of each seed and
averages the objective over the seeds: one seed's validation split holds few samples of a class, so
several seeds separate settings that one seed scores as a tie. Ties keep the earlier trial. The
chosen values are written to results/tuning/<name>.json; instances with `tune: <name>` run with them.
"""

from __future__ import annotations

import math
from typing import Any

from ..io import read_json, write_json


def objective(m: dict[str, float], r: dict[str, float]) -> tuple[float, list[str]]:
    keys = ["acc_val"] + (["acc_val_forget"] if not math.isnan(r.get("acc_val_forget", math.nan)) else ["acc_forget"])
    gaps = [abs(m[k] - r[k]) for k in keys]
    return (sum(gaps) / len(gaps) if not any(math.isnan(g) for g in gaps) else math.inf), keys


def run_tune(name: str, runs: list[dict[str, Any]], metric_files: list[str], out_json: str) -> None:
    """`runs` as config.tuning_runs lists them: per seed its retrain, then that seed's trials."""
    records = [{**r, "metrics": read_json(f)["metrics"]} for r, f in zip(runs, metric_files)]
    gold = records[0]["method"]
    refs = {r["seed"]: r["metrics"] for r in records if r["method"] == gold}  # each seed's retrain
    seeds = sorted(refs)
    scored: dict[str, dict[str, dict]] = {}  # instance -> trial method -> {overrides, per seed}
    for r in records:
        if r["method"] == gold:
            continue
        score, keys = objective(r["metrics"], refs[r["seed"]])
        t = scored.setdefault(r["instance"], {}).setdefault(r["method"], {"overrides": r["overrides"], "seeds": []})
        t["seeds"].append({"seed": r["seed"], "objective": score, **{k: r["metrics"][k] for k in keys}})
    chosen, trials = {}, {}
    for inst, by_trial in scored.items():
        ts = []
        for t in by_trial.values():
            per = t["seeds"]
            row = {"overrides": t["overrides"], "objective": sum(p["objective"] for p in per) / len(per)}
            row.update({k: sum(p[k] for p in per) / len(per) for k in per[0] if k not in ("seed", "objective")})
            if len(seeds) > 1:
                row["per_seed"] = per
            ts.append(row)
        trials[inst] = ts
        best = min(range(len(ts)), key=lambda i: ts[i]["objective"])
        chosen[inst] = ts[best]["overrides"]
        print(f"tuning {name}: {inst} -> {chosen[inst]} (objective {ts[best]['objective']:.3f} over {len(ts)} trials"
              + (f", mean of {len(seeds)} seeds" if len(seeds) > 1 else "") + ")")
    cell = {k: records[0][k] for k in ("dataset", "model", "training", "scenario")}
    cell["seed"] = seeds[0] if len(seeds) == 1 else seeds
    write_json(out_json, {"name": name, "cell": cell, "objective": "mean |trial - retrain| over validation "
                          "accuracies (retained, forgotten classes) or the forget set (random forgetting)"
                          + ("; the mean over the seeds" if len(seeds) > 1 else ""),
                          "chosen": chosen, "trials": trials})


def tuned_spec(spec: dict[str, Any], instance: str, tuning_file: str | None) -> dict[str, Any]:
    """The method spec with the values chosen for `instance` by its tuning entry applied."""
    if not spec.get("tune"):
        return spec
    chosen = read_json(tuning_file)["chosen"]
    if instance not in chosen:
        from ..errors import UserError

        raise UserError(f"{tuning_file} has no chosen values for {instance!r}; rerun rule tune")
    return {**{k: v for k, v in spec.items() if k != "tune"}, **chosen[instance]}


def chosen_artefacts(spec: dict[str, Any], artefacts: dict[str, Any]) -> dict[str, Any]:
    """{kind: path(s)} for the method `spec` runs as, from the unlearn job's inputs: `kind` as is, or
    `kind@<key>` candidates of a tuned instance (one per distinct trial artefact), keyed like the
    workflow keys artefact paths."""
    from ..config import artefact_key
    from ..methods import create_method

    method = create_method(spec)
    out = {k: v for k, v in artefacts.items() if "@" not in k}
    for kind in method.needs():
        if kind not in out:
            key = artefact_key(method, kind)
            if f"{kind}@{key}" not in artefacts:
                from ..errors import UserError

                raise UserError(f"no {kind} artefact with key {key} among this job's inputs; rerun the workflow")
            out[kind] = artefacts[f"{kind}@{key}"]
    return out
