"""Layer-wise L2 distance of each selected method's weights to the original model, in network
order, log scale (UNSIR Fig. 4)."""

from __future__ import annotations

import re

from ...io import read_json
from . import pyplot

READS = ("metrics",)


def layer_order(name: str) -> tuple:
    """Network order from parameter names (metrics.json stores them sorted): stem first, head
    last, numbered blocks in numeric order."""
    rank = 0 if ".stem" in name else 2 if ".head" in name else 1
    return rank, [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def draw(runs, tables, options, device, threads):
    import pandas as pd

    from ._panels import panels, title

    rows = []
    groups = panels(runs)
    for key, rs in groups.items():
        seen = set()
        for r in rs:
            if r["method"] in seen:
                continue
            seen.add(r["method"])
            dist = read_json(r["files"]["metrics"])["layer_dist_original"]
            for i, layer in enumerate(sorted(dist, key=layer_order)):
                rows.append({"dataset": key[0], "model": key[1], "scenario": key[2], "method": r["method"],
                             "seed": r["seed"], "index": i, "layer": layer, "dist_original": dist[layer]})
    df = pd.DataFrame(rows)
    plt = pyplot()
    fig, axes = plt.subplots(1, len(groups), figsize=(3.6 * len(groups), 3.0), squeeze=False)
    for ax, key in zip(axes[0], groups):
        sub = df[(df.dataset == key[0]) & (df.model == key[1]) & (df.scenario == key[2])]
        for marker, m in zip("os^v<>", dict.fromkeys(sub["method"])):
            h = sub[sub.method == m]
            ax.plot(h["index"], h["dist_original"], f"{marker}-", ms=2, label=f"{m} vs original")
        ax.set_yscale("log")
        ax.set_title(title(key), fontsize=8)
        ax.set_xlabel("parameter tensor (layer order)")
        ax.set_ylabel("L2 distance")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig, df
