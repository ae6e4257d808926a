"""Aggregate per-run metrics into a study table and render it.

Protocol (every number with its uncertainty):
- A cell is the mean over seeds with its sample std (ddof 1), n and a 95 % t-interval.
- Gaps are paired: per seed, |method - retrain of the same seed| (retrain = the replica-0 gold
  model of the same setup and scenario); a cell's gap is the mean ± std of those per-seed gaps.
  A method at 100/0 against a retrain at 0/100 scores 100, not 0.
- The average gap is computed per seed (the mean of that seed's gaps over the study's gap
  metrics), then aggregated like any metric (mean ± std, n, t-interval).
- A membership score whose attack is at chance on the model's own held-out shadow data carries no
  signal: seeds where it is at chance are left out of the cell (which says "(k/n seeds)"); when
  they are the majority the cell renders "n/a"; and a seed's MIA gap is left out of that seed's
  average gap when the attack of the method or of its retrain is at chance.
- Censored values (relearn times at their cap, AINs from capped times) carry a censor code; they
  render as bounds (">= x", "<= x") or "n/a", never as a plain number, and never enter a gap.
Timings are aggregated separately (`aggregate_cost`): they are the only numbers that change
between two runs of the same config.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import t

from .figures import pyplot

LABELS = {
    "acc_forget": "UA", "acc_retain": "RA", "acc_test_retain": "TA", "acc_test_forget": "TA-forget",
    "acc_val": "VA", "acc_test_retain_classmean": "TA (class mean)", "sparsity": "Sparsity", "acc_val_forget": "VA-forget", "mia_svc_efficacy": "MIA-eff.", "mia_entropy_lr": "MIA-ent", "mia_prob_lr": "MIA-prob",
    "mia_sm_correctness": "MIA-corr", "mia_sm_confidence": "MIA-conf", "mia_sm_entropy": "MIA-entr",
    "mia_sm_mentropy": "MIA-mentr", "mia_lira": "LiRA", "mia_lira_prob": "LiRA P(member)", "mia_thesis": "MIA (thesis)", "js_forget_pred": "JS(pred)", "dist_original": "‖θ−θ₀‖",
    "dist_retrain": "‖θ−θ_r‖", "time_s": "Time (s)", "time_step_s": "Step (s)", "time_artefacts_s": "Artefacts (s)",
    "peak_mem_mb": "Mem (MB)", "speedup": "Speed-up", "speedup_step": "Speed-up (step)", "avg_gap": "Avg. gap",
    "relearn_epochs": "RT (epochs)", "relearn_steps": "RT (steps)", "ain_epochs": "AIN (epochs)", "ain_steps": "AIN (steps)",
    "neg_hfe_forget": "−HFE forget", "neg_hfe_retain": "−HFE retain", "neg_hfe_test_retain": "−HFE test",
    "neg_hfe_gap": "−HFE gap",
}
ROW_KEYS = ["dataset", "model", "scenario", "method", "method_name", "access"]
CELL = ["dataset", "model", "scenario"]
EXACT, LOWER, UPPER, UNDEFINED = 0, 1, -1, 2  # censor codes (metrics.cost)


def t_interval(values: np.ndarray) -> tuple[float, float, float, float]:
    """(mean, std, ci_low, ci_high) with a 95 % Student-t interval; NaN spread for n < 2."""
    v = np.asarray([x for x in values if not (isinstance(x, float) and math.isnan(x))], dtype=float)
    if len(v) == 0:
        return math.nan, math.nan, math.nan, math.nan
    mean = float(v.mean())
    if len(v) < 2:
        return mean, math.nan, math.nan, math.nan

    std = float(v.std(ddof=1))
    half = float(t.ppf(0.975, len(v) - 1)) * std / math.sqrt(len(v))
    return mean, std, mean - half, mean + half


def _at_chance(metrics: dict, m: str) -> bool:
    """The run's attack for score `m` could not tell its own held-out shadow members from
    non-members (the lower end of its balanced-accuracy interval is at or below 0.5)."""
    low = metrics.get(f"{m}_bacc_low")
    return low is not None and not (low > 0.5)


def _censor(metrics: dict, m: str) -> int:
    return int(metrics.get(f"{m}_censor", EXACT))


def aggregate(records: list[dict[str, Any]], gap_metrics: list[str]) -> pd.DataFrame:
    """records: one per run with ROW_KEYS, seed and metrics. One tidy row per (row, metric)."""
    retrain = {}  # (dataset, model, scenario, seed) -> metrics of the primary retrain
    for r in records:
        if r["method_name"] == "retrain" and not r.get("replica"):
            retrain.setdefault((r["dataset"], r["model"], r["scenario"], r["seed"]), r["metrics"])
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault(tuple(r[k] for k in ROW_KEYS), []).append(r)
    rows = []
    for key, runs in groups.items():
        is_gold = key[4] == "retrain" and not runs[0].get("replica")
        names = list(dict.fromkeys(m for r in runs for m in r["metrics"]
                                   if not m.endswith(("_bacc", "_bacc_low", "_censor", "_reached"))))
        per_seed_gaps: dict[int, list[float]] = {r["seed"]: [] for r in runs}
        for m in names:
            vals, gaps, chance, censors = [], [], [], []
            for r in runs:
                v = r["metrics"].get(m, math.nan)
                code = _censor(r["metrics"], m)
                censors.append(code)
                vals.append(math.nan if code == UNDEFINED else v)
                chance.append(_at_chance(r["metrics"], m))
                ref = retrain.get((r["dataset"], r["model"], r["scenario"], r["seed"]))
                g = math.nan
                if ref is not None and not is_gold and m in ref and code == EXACT and _censor(ref, m) == EXACT:
                    g = abs(v - ref[m])
                    if m in gap_metrics and not (chance[-1] or _at_chance(ref, m)) and not math.isnan(g):
                        per_seed_gaps[r["seed"]].append(g)
                gaps.append(g)
            if any(f"{m}_bacc_low" in r["metrics"] for r in runs):  # an attack: seeds where it is at chance say nothing
                vals = [v for v, c in zip(vals, chance) if not c]
                gaps = [g for g, c in zip(gaps, chance) if not c]
            mean, std, lo, hi = t_interval(np.asarray(vals, float))
            gmean, gstd, glo, ghi = t_interval(np.asarray(gaps, float)) if not is_gold else (math.nan,) * 4
            bacc = [r["metrics"].get(f"{m}_bacc") for r in runs if f"{m}_bacc" in r["metrics"]]
            rows.append({**dict(zip(ROW_KEYS, key)), "metric": m, "n": len(runs), "mean": mean, "std": std,
                         "ci_low": lo, "ci_high": hi, "gap_mean": gmean, "gap_std": gstd, "gap_ci_low": glo,
                         "gap_ci_high": ghi, "attack_bacc": float(np.mean(bacc)) if bacc else math.nan,
                         "at_chance_seeds": int(sum(chance)), "censor": _censor_summary(censors)})
        if not is_gold:
            avg = [float(np.mean(g)) if g else math.nan for g in per_seed_gaps.values()]
            mean, std, lo, hi = t_interval(np.asarray(avg, float))
            used = sum(len(g) for g in per_seed_gaps.values())
            rows.append({**dict(zip(ROW_KEYS, key)), "metric": "avg_gap", "n": len(runs), "mean": mean, "std": std,
                         "ci_low": lo, "ci_high": hi, "gap_mean": math.nan, "gap_std": math.nan, "gap_ci_low": math.nan,
                         "gap_ci_high": math.nan, "attack_bacc": math.nan,
                         "at_chance_seeds": len(gap_metrics) * len(runs) - used, "censor": ""})
    return pd.DataFrame(rows)


def _censor_summary(codes: list[int]) -> str:
    """'' (exact), '>=' / '<=' (some seeds are bounds), 'n/a' (all undefined or mixed bounds)."""
    s = set(codes) - {EXACT}
    if not s:
        return ""
    if s == {UNDEFINED} and all(c == UNDEFINED for c in codes):
        return "n/a"
    bounds = s - {UNDEFINED}
    if bounds == {LOWER}:
        return ">="
    if bounds == {UPPER}:
        return "<="
    return "n/a" if bounds else ""


def aggregate_cost(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Timing rows: time incl. artefacts, step only, artefacts, memory, speed-ups (mean ± std, n)."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        if r.get("cost") is not None:
            groups.setdefault(tuple(r[k] for k in ROW_KEYS), []).append(r["cost"])
    rows = []
    for key, costs in groups.items():
        for m in ("time_s", "time_step_s", "time_artefacts_s", "peak_mem_mb", "speedup", "speedup_step"):
            mean, std, lo, hi = t_interval(np.asarray([c.get(m, math.nan) for c in costs], float))
            rows.append({**dict(zip(ROW_KEYS, key)), "metric": m, "n": len(costs), "mean": mean, "std": std,
                         "ci_low": lo, "ci_high": hi})
    machines = sorted({f"{m.get('cpu', '?')} ({m.get('torch_threads', '?')} threads, {m.get('device', '?')}, "
                       f"numerics {m.get('numerics', 'native')})" for cs in groups.values() for c in cs
                       if (m := c.get("machine"))})
    out = pd.DataFrame(rows)
    out.attrs["machines"] = machines
    return out


# --------------------------------------------------------------------------- rendering
def _num(x: float, digits: int = 2) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def fmt_cell(row: pd.Series | dict | None, digits: int = 2, gap: bool = True, transform=None) -> str:
    """'mean ± std (Δ gap)'; n = 1 shows no spread; censored values render as bounds or n/a."""
    if row is None:
        return "–"
    mean, std = row["mean"], row["std"]
    if transform is not None:
        mean = transform(mean)
    if row.get("censor") == "n/a":
        return "n/a (capped)"
    s = _num(mean, digits)
    if s == "–":
        return s
    if row.get("censor") in (">=", "<="):
        s = f"{'≥' if row['censor'] == '>=' else '≤'} {s}"
    if not (isinstance(std, float) and math.isnan(std)):
        s += f" ± {_num(std, digits)}"
    if gap and not math.isnan(row.get("gap_mean", math.nan)):
        s += f" (Δ {_num(row['gap_mean'], digits)})"
    if not math.isnan(row.get("attack_bacc", math.nan)):
        s += f" · signal {row['attack_bacc']:.2f}"
    return s


def display_frame(tidy: pd.DataFrame, cost: pd.DataFrame | None, columns: list[str],
                  ua_convention: str = "accuracy") -> tuple[pd.DataFrame, list[str]]:
    """Wide view: one row per (setup, scenario, method). Returns (frame, footnotes)."""
    rows, notes = [], set()
    multi_setup = tidy[["dataset", "model"]].drop_duplicates().shape[0] > 1
    for key, grp in tidy.groupby(ROW_KEYS, sort=False):
        ds, model, s, meth, name, access = key
        g = grp.set_index("metric")
        n = int(grp["n"].max())
        row = ({"Setup": f"{ds}/{model}"} if multi_setup else {}) | {"Scenario": s, "Method": meth, "Access": access, "n": n}
        for m in columns:
            label = LABELS.get(m, m)
            transform = None
            if m == "acc_forget" and ua_convention == "error":
                label, transform = "UA (100−acc)", (lambda v: 100 - v)
            if m not in g.index:
                row[label] = "–"
                continue
            r = g.loc[m].to_dict()
            if r["at_chance_seeds"] * 2 > r["n"]:
                row[label] = "n/a†"
                notes.add("† attack at chance on this model's own held-out shadow data in most seeds: the score carries no "
                          "membership signal and is left out of the average gap.")
                continue
            row[label] = fmt_cell(r, transform=transform)
            if r["at_chance_seeds"]:
                row[label] += f" ({r['n'] - r['at_chance_seeds']}/{r['n']} seeds)"
                notes.add("(k/n seeds): the attack was at chance on its own held-out shadow data in the other seeds; "
                          "the cell averages the k informative ones.")
            if r.get("censor"):
                notes.add("≥ / ≤: some seeds hit the relearn cap (the value is a bound); n/a (capped): both the model and "
                          "retrain hit the cap, the ratio is undefined.")
        if "avg_gap" in g.index:
            a = g.loc["avg_gap"]
            cell = fmt_cell(a.to_dict(), gap=False)
            if not math.isnan(a["ci_low"]):
                cell += f" [{a['ci_low']:.1f}, {a['ci_high']:.1f}]"
            if a["at_chance_seeds"] > 0 and not math.isnan(a["mean"]):  # it averages fewer terms than other rows
                cell += f" ‡{int(a['at_chance_seeds'])}"
                notes.add("‡k: this row's average gap leaves out k of its seed × metric terms (an attack at chance on "
                          "this model or on retrain, or a capped value): it averages fewer terms than a row without ‡, "
                          "so rank the two with care.")
            row[LABELS["avg_gap"]] = cell
        else:
            row[LABELS["avg_gap"]] = "—"
        if cost is not None and len(cost):
            c = cost[(cost.method == meth) & (cost.dataset == ds) & (cost.model == model) & (cost.scenario == s)].set_index("metric")
            for m in ("time_s", "time_step_s", "speedup"):
                row[LABELS[m]] = fmt_cell(c.loc[m].to_dict(), digits=1 if m == "speedup" else 2, gap=False) if m in c.index else "–"
        rows.append(row)
    return pd.DataFrame(rows), sorted(notes)


def render_markdown(wide: pd.DataFrame, title: str, caption: str, notes: list[str] | None = None) -> str:
    cols = list(wide.columns)
    lines = [f"# {title}", "", caption, "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in wide.itertuples(index=False)]
    if notes:
        lines += [""] + notes
    return "\n".join(lines) + "\n"


def render_latex(wide: pd.DataFrame, caption: str, notes: list[str] | None = None) -> str:
    def esc(s: str) -> str:
        return (str(s).replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("%", r"\%")
                .replace("±", r"$\pm$").replace("‖", r"$\|$").replace("θ", r"$\theta$").replace("−", "-")
                .replace("Δ", r"$\Delta$").replace("≥", r"$\geq$").replace("≤", r"$\leq$").replace("†", r"$\dagger$")
                .replace("·", r"$\cdot$").replace("—", "--").replace("–", "--"))
    cols = list(wide.columns)
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{esc(caption)}}}",
             r"\begin{tabular}{" + "l" * len(cols) + "}", r"\toprule", " & ".join(esc(c) for c in cols) + r" \\", r"\midrule"]
    lines += [" & ".join(esc(v) for v in row) + r" \\" for row in wide.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}"] + [esc(n) + r"\\" for n in (notes or [])] + [r"\end{table}"]
    return "\n".join(lines) + "\n"


def plot_gaps(tidy: pd.DataFrame, metrics: list[str], title: str):
    """One panel per cell: each row's average gap to retrain (mean and its 95 % t-interval over seeds)
    against the noise floor (the independent retrain's interval, shaded). The axis fits the methods,
    not the original model: a row beyond it (usually the original) is marked at the edge with its
    value. Returns the figure."""

    plt = pyplot()
    gaps = tidy[(tidy["metric"] == "avg_gap") & ~((tidy["method_name"] == "retrain") & (tidy["method"] == "retrain"))]
    panels = list(dict.fromkeys(zip(gaps["dataset"], gaps["model"], gaps["scenario"])))
    n_rows = max([len(set(gaps["method"]))] + [1])
    ncol = min(max(len(panels), 1), 2)
    nrow = -(-max(len(panels), 1) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(5.6 * ncol, (1.2 + 0.38 * n_rows) * nrow), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (ds, model, s) in zip(axes.flat, panels):
        sub = gaps[(gaps["dataset"] == ds) & (gaps["model"] == model) & (gaps["scenario"] == s)].reset_index(drop=True)
        floor = sub[(sub["method_name"] == "retrain")]
        methods = sub[(sub["method_name"] != "retrain") & (sub["method"] != "original")]
        right = [methods["ci_high"].max(), methods["mean"].max(), floor["ci_high"].max() if len(floor) else np.nan]
        xmax = 1.15 * np.nanmax(right + [0.5]) if np.isfinite(np.nanmax(right + [0.5])) else 1.0
        if len(floor):
            f = floor.iloc[0]
            lo, hi = (f["ci_low"], f["ci_high"]) if np.isfinite(f["ci_low"]) else (f["mean"], f["mean"])
            ax.axvspan(max(lo, 0), hi, color="0.85", zorder=0, label=f"noise floor ({f['method']}, 95 % interval)")
            ax.axvline(f["mean"], color="0.5", lw=0.8, zorder=1)
        for y, (_, r) in enumerate(sub.iterrows()):
            mean, lo, hi = r["mean"], r["ci_low"], r["ci_high"]
            if not np.isfinite(mean):
                continue
            if mean > xmax:  # off the scale: marked at the edge with its value
                ax.plot([xmax * 0.985], [y], marker=">", color="0.3")
                ax.annotate(f"{mean:.1f}", (xmax * 0.97, y), ha="right", va="center", fontsize=7)
                continue
            err = [[mean - lo], [hi - mean]] if np.isfinite(lo) else None
            ax.errorbar(mean, y, xerr=err, fmt="o", ms=4, capsize=3, color="C0" if r["method_name"] != "retrain" else "0.4")
        ax.set_yticks(range(len(sub)), [f"{m} (n={n})" for m, n in zip(sub["method"], sub["n"])], fontsize=8)
        ax.set_ylim(len(sub) - 0.5, -0.5)
        ax.set_xlim(0, xmax)
        ax.set_xlabel(f"average paired |method − retrain| over {', '.join(LABELS.get(m, m) for m in metrics)} (points)", fontsize=7)
        ax.set_title(f"{ds}/{model} — {s}", fontsize=9)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
