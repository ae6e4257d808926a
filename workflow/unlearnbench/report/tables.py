"""Aggregate per-run metrics into a study table (tidy CSV), render it (Markdown, LaTeX) and plot
each method's gap to the retrained model."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

LABELS = {
    "acc_forget": "UA", "acc_retain": "RA", "acc_test_retain": "TA", "acc_test_forget": "TA-forget",
    "acc_val": "VA", "mia_svc_efficacy": "MIA-eff.", "mia_entropy_lr": "MIA-ent", "mia_prob_lr": "MIA-prob",
    "mia_sm_correctness": "MIA-corr", "mia_sm_confidence": "MIA-conf", "mia_sm_entropy": "MIA-entr",
    "mia_sm_mentropy": "MIA-mentr", "js_forget_pred": "JS(pred)", "dist_original": "‖θ−θ₀‖",
    "dist_retrain": "‖θ−θ_r‖", "time_s": "Time (s)", "peak_mem_mb": "Mem (MB)", "speedup": "Speed-up",
    "avg_gap": "Avg. gap",
    "relearn_epochs": "RT (epochs)", "relearn_steps": "RT (steps)", "relearn_epochs_reached": "RT reached",
    "relearn_steps_reached": "RT-steps reached", "ain_epochs": "AIN (epochs)", "ain_steps": "AIN (steps)",
    "time_total_s": "Time+artefacts (s)", "speedup_total": "Speed-up (incl. artefacts)",
    "neg_hfe_forget": "−HFE forget", "neg_hfe_retain": "−HFE retain", "neg_hfe_test_retain": "−HFE test",
    "neg_hfe_gap": "−HFE gap",
}


ROW_KEYS = ["dataset", "model", "scenario", "method", "method_name", "access"]


def aggregate(records: list[dict[str, Any]], gap_metrics: list[str]) -> pd.DataFrame:
    """records: one dict per run with keys dataset, model, scenario, method, method_name, access,
    seed and metrics.

    Returns tidy rows (dataset, model, scenario, method, metric) with mean, std (ddof=1), n, the
    retrained model's mean and gap = |mean - retrain mean| (retrain of the same dataset, model and
    scenario); plus `avg_gap` (mean gap over `gap_metrics`) and `speedup` (retrain time / method
    time) rows.
    """
    rows = [{**{k: r[k] for k in ROW_KEYS}, "seed": r["seed"], "metric": k, "value": v}
            for r in records for k, v in r["metrics"].items()]
    df = pd.DataFrame(rows)
    g = df.groupby(ROW_KEYS + ["metric"], sort=False)["value"]
    out = g.agg(mean="mean", n="count").reset_index()
    out["std"] = g.std(ddof=1).fillna(0.0).to_numpy()
    cell = ["dataset", "model", "scenario"]
    is_ref = out["method_name"] == "retrain"
    ref = out[is_ref].drop_duplicates(cell + ["metric"]).set_index(cell + ["metric"])["mean"]
    out["retrain_mean"] = [ref.get(tuple(k), np.nan) for k in out[cell + ["metric"]].itertuples(index=False)]
    out["gap"] = (out["mean"] - out["retrain_mean"]).abs()
    extra = []
    for key, grp in out.groupby(ROW_KEYS, sort=False):
        base = dict(zip(ROW_KEYS, key), n=int(grp["n"].min()), std=np.nan, gap=np.nan)
        gaps = grp.set_index("metric")["gap"].reindex(gap_metrics)
        extra.append({**base, "metric": "avg_gap", "mean": float(gaps.mean()), "retrain_mean": 0.0})
        t = grp.set_index("metric")["mean"].get("time_s", np.nan)
        rt = ref.get(tuple(key[:3]) + ("time_s",), np.nan)
        extra.append({**base, "metric": "speedup", "mean": float(rt / t) if t and t > 0 else np.nan, "retrain_mean": 1.0})
    out = pd.concat([out, pd.DataFrame(extra)], ignore_index=True)
    order = {m: i for i, m in enumerate(dict.fromkeys(r["method"] for r in records))}
    out["_o"] = out["method"].map(order)
    out = out.sort_values(["dataset", "model", "scenario", "_o"], kind="stable").drop(columns="_o")
    return out[ROW_KEYS + ["metric", "mean", "std", "n", "retrain_mean", "gap"]].reset_index(drop=True)


def _fmt(mean: float, std: float, gap: float | None, digits: int = 2) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    s = f"{mean:.{digits}f}"
    if std is not None and not math.isnan(std) and std > 0:
        s += f" ± {std:.{digits}f}"
    if gap is not None and not math.isnan(gap):
        s += f" ({gap:.{digits}f})"
    return s


def display_frame(tidy: pd.DataFrame, columns: list[str], ua_convention: str = "accuracy") -> pd.DataFrame:
    """Wide view: one row per (scenario, method); cells 'mean ± std (gap to retrain)'."""
    rows = []
    multi_setup = tidy[["dataset", "model"]].drop_duplicates().shape[0] > 1
    for (ds, model, s, meth, name, access), grp in tidy.groupby(ROW_KEYS, sort=False):
        g = grp.set_index("metric")
        row = ({"Setup": f"{ds}/{model}"} if multi_setup else {}) | {"Scenario": s, "Method": meth, "Access": access}
        for m in columns:
            if m not in g.index:
                row[LABELS.get(m, m)] = "–"
                continue
            mean, std, gap = g.loc[m, "mean"], g.loc[m, "std"], g.loc[m, "gap"]
            label = LABELS.get(m, m)
            if m == "acc_forget" and ua_convention == "error":
                mean, label = 100 - mean, "UA (100−acc)"
            row[label] = _fmt(mean, std, None if name == "retrain" else gap)
        row[LABELS["avg_gap"]] = _fmt(g.loc["avg_gap", "mean"], None, None) if "avg_gap" in g.index else "–"
        row[LABELS["time_s"]] = _fmt(g.loc["time_s", "mean"], None, None) if "time_s" in g.index else "–"
        row[LABELS["speedup"]] = _fmt(g.loc["speedup", "mean"], None, None, 1) if "speedup" in g.index else "–"
        rows.append(row)
    return pd.DataFrame(rows)


def render_markdown(wide: pd.DataFrame, title: str, caption: str) -> str:
    cols = list(wide.columns)
    lines = [f"# {title}", "", caption, "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in wide.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def render_latex(wide: pd.DataFrame, caption: str) -> str:
    def esc(s: str) -> str:
        return (str(s).replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("%", r"\%")
                .replace("±", r"$\pm$").replace("‖", r"$\|$").replace("θ", r"$\theta$").replace("−", "-"))
    cols = list(wide.columns)
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{esc(caption)}}}",
             r"\begin{tabular}{" + "l" * len(cols) + "}", r"\toprule", " & ".join(esc(c) for c in cols) + r" \\", r"\midrule"]
    lines += [" & ".join(esc(v) for v in row) + r" \\" for row in wide.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def pyplot():
    """matplotlib.pyplot with the file-only Agg backend (rules run without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_gaps(tidy: pd.DataFrame, metrics: list[str], title: str, path: str) -> None:
    """One panel per scenario: grouped bars of |method − retrain| per metric, plus the average gap."""
    plt = pyplot()
    panels = list(dict.fromkeys(zip(tidy["dataset"], tidy["model"], tidy["scenario"])))
    fig, axes = plt.subplots(1, len(panels), figsize=(max(6, 1.6 * (len(metrics) + 1)) * len(panels), 3.8), squeeze=False)
    for ax, (ds, model, s) in zip(axes[0], panels):
        sub = tidy[(tidy["dataset"] == ds) & (tidy["model"] == model) & (tidy["scenario"] == s)
                   & (tidy["method_name"] != "retrain")]
        methods = list(dict.fromkeys(sub["method"]))
        cols = metrics + ["avg_gap"]
        width = 0.8 / max(len(methods), 1)
        for i, m in enumerate(methods):
            g = sub[sub["method"] == m].set_index("metric")
            vals = [g.loc[c, "mean"] if c == "avg_gap" else g.loc[c, "gap"] if c in g.index else np.nan for c in cols]
            ax.bar(np.arange(len(cols)) + i * width - 0.4 + width / 2, vals, width, label=m)
        ax.set_xticks(np.arange(len(cols)), [LABELS.get(c, c) for c in cols])
        ax.set_ylabel("|method − retrain| (points)")
        ax.set_title(f"{ds}/{model} — {s}", fontsize=9)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120, format="png")
    plt.close(fig)
