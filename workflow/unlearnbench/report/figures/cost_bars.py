"""Unlearning latency (log scale) and peak memory per method, one column per study setup (CLUE
Figs 3 and 5, UNSIR Fig. 6). Reads the studies' cost tables (`<study>.cost.csv`: per row the mean,
sample std and n over seeds of each run's timing records). Bar = mean, error bar = std over seeds
(none for n = 1), n in the panel title.

Options: highlight (a registered method name drawn in red, default "clue"); methods (the method
instances to draw, in this order; default every row but the original model); metrics (the rows of
panels, default [time_s, peak_mem_mb]; any of time_s, time_step_s, time_artefacts_s, peak_mem_mb,
speedup, speedup_step); split (true: a time_s bar is drawn as the unlearning step with the artefacts
the run consumed stacked on it, e.g. UNSIR's noise; the error bar is the total's).
A setup whose study has several scenarios labels each bar "method · scenario".
"""

from __future__ import annotations

from ...errors import UserError
from . import pyplot

READS = ("table",)
AXES = {"time_s": ("time incl. artefacts (s, log)", True), "time_step_s": ("unlearning step (s, log)", True),
        "time_artefacts_s": ("artefacts (s, log)", True), "peak_mem_mb": ("peak memory (MB)", False),
        "speedup": ("speed-up vs retrain (log)", True), "speedup_step": ("speed-up of the step (log)", True)}


def select(df, methods: list[str] | None):
    """The rows of the drawn methods, in the order asked (default: every row but the original model)."""
    if methods is None:
        return df[df["method_name"] != "original"]
    missing = [m for m in methods if m not in set(df["method"])]
    if missing:
        raise UserError(f"cost_bars: method {missing[0]!r} is in none of the figure's cost tables; "
                        f"they hold {', '.join(dict.fromkeys(df['method']))}")
    order = {m: i for i, m in enumerate(methods)}
    out = df[df["method"].isin(methods)].copy()
    out["_order"] = out["method"].map(order)
    return out.sort_values("_order", kind="stable").drop(columns="_order")


def draw(runs, tables, options, device, threads):
    import pandas as pd

    df = pd.concat([pd.read_csv(t) for t in tables if t.endswith(".cost.csv")], ignore_index=True)
    metrics = list(options.get("metrics", ["time_s", "peak_mem_mb"]))
    unknown = [m for m in metrics if m not in AXES]
    if unknown:
        raise UserError(f"cost_bars: unknown metric {unknown[0]!r}; known: {', '.join(AXES)}")
    split = bool(options.get("split", False))
    # the figure's data: the drawn metrics, the parts of a split bar, and the speed-up
    need = set(metrics) | {"speedup"} | ({"time_step_s", "time_artefacts_s"} if split and "time_s" in metrics else set())
    df = select(df[df["metric"].isin(need)], options.get("methods"))
    setups = list(dict.fromkeys(zip(df["study"], df["dataset"], df["model"])))
    highlight = options.get("highlight", "clue")
    plt = pyplot()
    fig, axes = plt.subplots(len(metrics), len(setups), figsize=(5.5 * len(setups), 3.25 * len(metrics)), squeeze=False)
    for j, (study, ds, model) in enumerate(setups):
        sub = df[(df.study == study) & (df.dataset == ds) & (df.model == model)]
        several = sub["scenario"].nunique() > 1
        for i, metric in enumerate(metrics):
            ylabel, log = AXES[metric]
            g = sub[sub.metric == metric]
            ax = axes[i][j]
            colors = ["tab:red" if m == highlight else "tab:gray" if m == "retrain" else "tab:blue" for m in g["method_name"]]
            x = range(len(g))
            if split and metric == "time_s":
                key = ["scenario", "method"]
                step = sub[sub.metric == "time_step_s"].set_index(key)["mean"]
                arts = sub[sub.metric == "time_artefacts_s"].set_index(key)["mean"]
                idx = list(zip(g["scenario"], g["method"]))
                s = step.reindex(idx).fillna(0).to_numpy()
                a = arts.reindex(idx).fillna(0).to_numpy()
                ax.bar(x, s, color=colors, label="unlearning step")
                ax.bar(x, a, bottom=s, color=colors, alpha=0.45, hatch="//", label="artefacts (e.g. noise)")
                ax.errorbar(x, g["mean"], yerr=g["std"].fillna(0), fmt="none", ecolor="black", capsize=3)
                ax.legend(fontsize=7)
            else:
                ax.bar(x, g["mean"], yerr=g["std"].fillna(0), color=colors, capsize=3)
            labels = [f"{m} · {sc}" if several else m for m, sc in zip(g["method"], g["scenario"])]
            ax.set_xticks(list(x), labels, rotation=45, ha="right", fontsize=8)
            ax.set_ylabel(ylabel)
            if log:
                ax.set_yscale("log")
                low = [v for v in (list(s) if split and metric == "time_s" else []) + list(g["mean"]) if v > 0]
                if low:  # room below the smallest bar (a stacked step of 1 s would sit on a 10^0 axis floor)
                    ax.set_ylim(bottom=min(low) / 3)
            n = sorted({int(v) for v in g["n"]}) if len(g) else [0]
            ax.set_title(f"{ds}/{model} (mean ± std, n = {'/'.join(map(str, n))} seeds)", fontsize=9)
    fig.tight_layout()
    return fig, df
