"""Unlearning latency (log scale) and peak memory per method, one column per study setup (CLUE
Figs 3 and 5). Reads the studies' cost tables. Options: highlight (a registered method name drawn
in red, default "clue")."""

from __future__ import annotations

from . import pyplot

READS = ("table",)


def draw(runs, tables, options, device, threads):
    import pandas as pd

    df = pd.concat([pd.read_csv(t) for t in tables if t.endswith(".cost.csv")], ignore_index=True)
    df = df[df["metric"].isin(["time_s", "peak_mem_mb", "speedup"]) & (df["method_name"] != "original")]
    setups = list(dict.fromkeys(zip(df["study"], df["dataset"], df["model"])))
    highlight = options.get("highlight", "clue")
    plt = pyplot()
    fig, axes = plt.subplots(2, len(setups), figsize=(5.5 * len(setups), 6.5), squeeze=False)
    for j, (study, ds, model) in enumerate(setups):
        sub = df[(df.study == study) & (df.dataset == ds) & (df.model == model)]
        for i, (metric, ylabel, log) in enumerate((("time_s", "time incl. artefacts (s, log)", True),
                                                   ("peak_mem_mb", "peak memory (MB)", False))):
            g = sub[sub.metric == metric]
            ax = axes[i][j]
            colors = ["tab:red" if m == highlight else "tab:gray" if m == "retrain" else "tab:blue" for m in g["method_name"]]
            ax.bar(range(len(g)), g["mean"], yerr=g["std"].fillna(0), color=colors)
            ax.set_xticks(range(len(g)), g["method"], rotation=45, ha="right", fontsize=8)
            ax.set_ylabel(ylabel)
            if log:
                ax.set_yscale("log")
            ax.set_title(f"{ds}/{model} (n = {int(g['n'].min()) if len(g) else 0} seeds)", fontsize=9)
    fig.tight_layout()
    return fig, df
