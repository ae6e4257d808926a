"""Prediction histogram on the forget set: the fraction of forget samples each model assigns to
each class, one panel per (setup, scenario), one bar group per selected method (UNSIR Figs 2-3,
UISPS Figs 4-5)."""

from __future__ import annotations

from ...io import read_json
from . import pyplot

READS = ("metrics",)


def draw(runs, tables, options, device, threads):
    import pandas as pd

    from ._panels import panels, title

    rows = []
    groups = panels(runs)
    for key, rs in groups.items():
        seen = set()
        for r in rs:
            if r["method"] in seen:  # first selected seed of each method
                continue
            seen.add(r["method"])
            for c, v in enumerate(read_json(r["files"]["metrics"])["forget_pred_hist"]):
                rows.append({"dataset": key[0], "model": key[1], "scenario": key[2], "method": r["method"],
                             "seed": r["seed"], "predicted_class": c, "fraction": v})
    df = pd.DataFrame(rows)
    plt = pyplot()
    fig, axes = plt.subplots(1, len(groups), figsize=(3.6 * len(groups), 3.0), squeeze=False)
    for ax, key in zip(axes[0], groups):
        sub = df[(df.dataset == key[0]) & (df.model == key[1]) & (df.scenario == key[2])]
        methods = list(dict.fromkeys(sub["method"]))
        w = 0.8 / len(methods)
        for i, m in enumerate(methods):
            h = sub[sub.method == m]
            ax.bar(h["predicted_class"] + (i - (len(methods) - 1) / 2) * w, h["fraction"], w, label=m)
        ax.set_title(title(key), fontsize=8)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("fraction of forget samples")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig, df
