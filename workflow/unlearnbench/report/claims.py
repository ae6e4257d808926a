"""A paper's headline claims as checks over table cells (rule report_claims):
results/papers/<paper>.claims.{csv,md}.

A claim (config `papers.<p>.claims`, schema in workflow/schemas/config.schema.yaml) names a study, a
cell (`where`: scenario, model, dataset), a metric, a row `a` and either a row `b` of the same seed
or a constant `value`, a test and the paper's own number. Per seed, d = a − b (or a − value); the
verdict comes from the 95 % t-interval of the mean of d over the seeds both rows ran:

  less / greater   reproduced when the interval lies below / above `by` (default 0), not
                   reproduced when it lies on the other side, inconclusive when it covers `by`;
  equal            reproduced when the interval lies within ±margin, not reproduced when it lies
                   outside, inconclusive otherwise;
  n < 2            inconclusive (no interval).

Metrics: any per-run metric of the study (accuracies and MIA in %), `avg_gap` (the table's per-seed
average gap to retrain over the study's gap metrics, attacks at chance left out) and the cost
metrics `time_s`, `time_step_s`, `speedup` (retrain time / the run's time).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ..io import write_csv, write_text
from .study import DEFAULT_METRICS, load_records
from .tables import EXACT, _at_chance, _censor, t_interval

COST_METRICS = ("time_s", "time_step_s", "speedup", "speedup_step")
VERDICTS = ("reproduced", "not reproduced", "inconclusive", "not checked")


def per_seed(records: list[dict[str, Any]], gap_metrics: list[str]) -> dict[tuple, dict[str, float]]:
    """{(dataset, model, scenario, row, seed): {metric: value}} with each run's avg_gap and cost."""
    gold = {(r["dataset"], r["model"], r["scenario"], r["seed"]): r["metrics"] for r in records
            if r["method_name"] == "retrain" and not r.get("replica")}
    out = {}
    for r in records:
        m, ref = r["metrics"], gold.get((r["dataset"], r["model"], r["scenario"], r["seed"]))
        vals = {k: (v if _censor(m, k) == EXACT else math.nan) for k, v in m.items() if isinstance(v, (int, float))}
        gaps = [abs(m[k] - ref[k]) for k in gap_metrics
                if ref is not None and r["metrics"] is not ref and k in m and k in ref
                and _censor(m, k) == EXACT == _censor(ref, k) and not (_at_chance(m, k) or _at_chance(ref, k))]
        vals["avg_gap"] = float(np.mean(gaps)) if gaps else math.nan
        vals.update({k: (r["cost"] or {}).get(k, math.nan) for k in COST_METRICS})
        out[(r["dataset"], r["model"], r["scenario"], r["method"], r["seed"])] = vals
    return out


def judge(d: list[float], test: str, by: float = 0.0, margin: float = 0.0) -> tuple[str, tuple]:
    """(verdict, (mean, std, ci_low, ci_high)) of the paired differences d (module docstring)."""
    stats = t_interval(np.asarray(d, float))
    _, _, lo, hi = stats
    if len([x for x in d if not math.isnan(x)]) < 2 or math.isnan(lo):
        return "inconclusive", stats
    if test == "equal":
        inside, outside = -margin <= lo and hi <= margin, lo > margin or hi < -margin
    elif test == "less":
        inside, outside = hi < by, lo >= by
    elif test == "greater":
        inside, outside = lo > by, hi <= by
    else:
        raise ValueError(f"unknown claim test {test!r}")
    return ("reproduced" if inside else "not reproduced" if outside else "inconclusive"), stats


def _cell_match(key: tuple, where: dict[str, Any]) -> bool:
    return all(key[i] == where[k] for i, k in enumerate(("dataset", "model", "scenario")) if k in where)


def check_claim(claim: dict[str, Any], seeds: dict[tuple, dict[str, float]]) -> dict[str, Any]:
    """One claim's row: the paired differences over the seeds of its cell(s), their interval, the verdict
    ("not checked" with the reason when an overlay left its study or rows out: config.check_claims)."""
    where, metric = claim.get("where", {}), claim["metric"]
    if claim.get("unavailable"):
        seeds = {}
    a_runs = {(k[0], k[1], k[2], k[4]): v for k, v in seeds.items() if k[3] == claim["a"] and _cell_match(k, where)}
    d, a_vals = [], []
    for (ds, model, sc, seed), v in sorted(a_runs.items()):
        other = (seeds.get((ds, model, sc, claim["b"], seed), {}).get(metric, math.nan) if "b" in claim
                 else float(claim["value"]))
        a_vals.append(v.get(metric, math.nan))
        d.append(a_vals[-1] - other)
    pairs = [x for x in d if not math.isnan(x)]
    verdict, (mean, std, lo, hi) = judge(pairs, claim["test"], float(claim.get("by", 0.0)), float(claim.get("margin", 0.0)))
    am, asd, alo, ahi = t_interval(np.asarray(a_vals, float))
    return {"id": claim["id"], "claim": claim["claim"], "paper": str(claim.get("paper", "")), "study": claim["study"],
            "metric": metric, "a": claim["a"], "b": claim.get("b", claim.get("value")), "test": claim["test"],
            "by": float(claim.get("by", 0.0)), "margin": float(claim.get("margin", 0.0)),
            "n": len(pairs), "a_mean": am, "a_std": asd, "d_mean": mean, "d_std": std, "d_ci_low": lo, "d_ci_high": hi,
            "verdict": "not checked" if claim.get("unavailable") else verdict if a_runs else "inconclusive",
            "note": claim.get("unavailable") or ("" if a_runs else "no run of this row in this cell")}


def _fmt(x: float) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2f}"


def render(title: str, rows: pd.DataFrame, caption: str) -> str:
    lines = [f"# {title}", "", caption, "",
             "| Claim | Paper | Ours: a (mean ± std) | a − b per seed: mean ± std, n, 95 % interval | Verdict |",
             "|---|---|---|---|---|"]
    for _, r in rows.iterrows():
        versus = f"{r['a']} − {r['b']}"
        test = {"less": f"< {r['by']:g}", "greater": f"> {r['by']:g}", "equal": f"within ±{r['margin']:g}"}[r["test"]]
        diff = (f"{versus}: {_fmt(r['d_mean'])} ± {_fmt(r['d_std'])}, n = {r['n']}, "
                f"[{_fmt(r['d_ci_low'])}, {_fmt(r['d_ci_high'])}] (claim: {test})")
        lines.append(f"| {r['claim']} ({r['study']}, {r['metric']}) | {r['paper']} | {_fmt(r['a_mean'])} ± {_fmt(r['a_std'])} "
                     f"| {diff} | **{r['verdict']}**{' (' + r['note'] + ')' if r['note'] else ''} |")
    counts = rows["verdict"].value_counts()
    lines += ["", "Verdicts: " + ", ".join(f"{counts.get(v, 0)} {v}" for v in VERDICTS) + "."]
    return "\n".join(lines) + "\n"


CAPTION = ("Each claim is a paired comparison over seeds: per seed, d = a − b (b another row of the same seed "
           "and cell, or the paper's constant); the verdict is read from the 95 % t-interval of the mean of d: "
           "reproduced when the interval lies on the claim's side, not reproduced when it lies on the other side, "
           "inconclusive when it covers the boundary (or n < 2). Accuracies and MIA in %; avg_gap as in the table; "
           "speedup = retrain time / the run's time, artefacts included.")


def write_claims(name: str, paper: dict[str, Any], runs: dict[str, list[dict[str, Any]]], studies: dict[str, Any],
                 out_csv: str, out_md: str) -> pd.DataFrame:
    seeds_by_study = {}
    for study, recs in runs.items():
        spec = studies[study]
        gap = spec.get("gap_metrics") or spec.get("metrics") or DEFAULT_METRICS
        seeds_by_study[study] = per_seed(load_records(recs), gap)
    rows = pd.DataFrame([check_claim(c, seeds_by_study.get(c["study"], {})) for c in paper["claims"]])
    write_csv(out_csv, rows)
    md = render(f"{paper.get('title', name)}: headline claims", rows, CAPTION)
    write_text(out_md, md)
    print(md)
    return rows
