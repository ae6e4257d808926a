"""Grouped bars: several per-run metrics side by side for each method, one panel per setup and
scenario; bar = mean over the selected seeds, error bar = sample std (none for n = 1), n in the
panel title (DAU Fig. 2: the confidence, entropy, modified-entropy and probability attacks).

Options: `metrics` (list, required: metric names of metrics.json), `labels` ({metric: legend text}),
`reference` (a method instance whose means are also drawn as dashed lines across the panel, e.g.
retrain), `ylabel`.
A membership score whose attack is at chance on the model's own held-out shadow data in most seeds
(`<metric>_bacc_low` <= 0.5, when evaluate records it) is drawn hatched: it carries no signal.
"""

from __future__ import annotations

import math

from ...errors import UserError
from ...io import read_json
from . import pyplot

READS = ("metrics",)


def _at_chance(metrics: dict, m: str) -> bool:
    low = metrics.get(f"{m}_bacc_low")
    return low is not None and not (low > 0.5)


def summarise(runs: list[dict], metrics: list[str]):
    """Tidy frame: one row per (dataset, model, scenario, method, metric) with mean, std, n and the
    number of seeds whose attack is at chance."""
    import numpy as np
    import pandas as pd

    rows = []
    for r in runs:
        m = read_json(r["files"]["metrics"])["metrics"]
        for k in metrics:
            rows.append({"dataset": r["dataset"], "model": r["model"], "scenario": r["scenario"], "method": r["method"],
                         "seed": r["seed"], "metric": k, "value": float(m.get(k, math.nan)),
                         "at_chance": _at_chance(m, k)})
    raw = pd.DataFrame(rows)
    if raw.empty:
        return raw
    keys = ["dataset", "model", "scenario", "method", "metric"]
    out = (raw.groupby(keys, sort=False)
              .agg(mean=("value", "mean"), std=("value", lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else math.nan),
                   n=("value", "size"), at_chance_seeds=("at_chance", "sum"))
              .reset_index())
    return out


def draw(runs, tables, options, device, threads):
    from ._panels import panels, title

    metrics = list(options.get("metrics", []))
    if not metrics:
        raise UserError("figure kind metric_bars needs options.metrics (a list of metric names)")
    labels = {m: options.get("labels", {}).get(m, m) for m in metrics}
    ref = options.get("reference")
    df = summarise(runs, metrics)
    groups = panels(runs)
    plt = pyplot()
    ncols = min(2, len(groups)) or 1
    nrows = math.ceil(len(groups) / ncols) or 1
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.2 * ncols, 3.6 * nrows), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    width = 0.8 / len(metrics)
    for i, key in enumerate(groups):
        ax = axes[i // ncols][i % ncols]
        sub = df[(df.dataset == key[0]) & (df.model == key[1]) & (df.scenario == key[2])]
        methods = list(dict.fromkeys(sub["method"]))
        bars = methods
        for j, metric in enumerate(metrics):
            s = sub[sub.metric == metric].set_index("method")
            x = [b + (j - (len(metrics) - 1) / 2) * width for b in range(len(bars))]
            means = [s.loc[m, "mean"] if m in s.index else math.nan for m in bars]
            stds = [0 if m not in s.index or math.isnan(s.loc[m, "std"]) else s.loc[m, "std"] for m in bars]
            hatch = ["//" if m in s.index and 2 * s.loc[m, "at_chance_seeds"] > s.loc[m, "n"] else "" for m in bars]
            drawn = ax.bar(x, means, width, yerr=stds, capsize=2, color=colors[j % len(colors)], label=labels[metric])
            for rect, h in zip(drawn, hatch):
                rect.set_hatch(h)
            if ref is not None and ref in s.index:
                ax.hlines(s.loc[ref, "mean"], -0.5, len(bars) - 0.5, colors=colors[j % len(colors)], linestyles="dashed",
                          linewidth=1)
        n = int(sub["n"].min()) if len(sub) else 0
        ax.set_xticks(range(len(bars)), bars, rotation=30, ha="right", fontsize=8)
        ax.set_xlim(-0.5, len(bars) - 0.5)
        ax.set_ylabel(options.get("ylabel", "value"), fontsize=8)
        hatched = bool((2 * sub["at_chance_seeds"] > sub["n"]).any())
        ax.set_title(f"{title(key)} (n = {n} seed{'s' if n != 1 else ''}{'; dashed: ' + ref if ref else ''}"
                     f"{'; hatched: attack at chance' if hatched else ''})", fontsize=8)
        if i == 0:
            ax.legend(fontsize=7, ncol=2)
    for k in range(len(groups), nrows * ncols):
        axes[k // ncols][k % ncols].axis("off")
    fig.tight_layout()
    return fig, df
