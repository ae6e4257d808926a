"""Density of the free-energy OOD score -HFE = log sum exp(z) on forget vs retain training samples,
before and after unlearning (CLUE Fig. 4). Options: before, after (method instances; default the
figure's first and last selected methods)."""

from __future__ import annotations

from ...io import read_json, read_npz
from ...parts.energy import neg_free_energy
from . import pyplot

READS = ("outputs", "data", "request")


def draw(runs, tables, options, device, threads):
    import numpy as np
    import pandas as pd

    from ._panels import by_method

    methods = list(dict.fromkeys(r["method"] for r in runs))
    stages = {"before": options.get("before", methods[0]), "after": options.get("after", methods[-1])}
    first = by_method(runs, stages["before"])
    y = read_npz(first["files"]["data"])["y"]
    req = read_json(first["files"]["request"])
    rows = []
    for stage, method in stages.items():
        s = neg_free_energy(read_npz(by_method(runs, method)["files"]["outputs"])["logits"])
        for part in ("forget", "retain"):
            idx = np.asarray(req[part])
            rows.append(pd.DataFrame({"stage": stage, "method": method, "set": part, "index": idx,
                                      "label": y[idx], "neg_hfe": s[idx]}))
    df = pd.concat(rows, ignore_index=True)
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    bins = np.linspace(df["neg_hfe"].min(), df["neg_hfe"].max(), 50)
    for ax, stage in zip(axes, stages):
        for part, color in (("retain", "tab:blue"), ("forget", "tab:red")):
            v = df[(df.stage == stage) & (df.set == part)]["neg_hfe"]
            ax.hist(v, bins=bins, density=True, alpha=0.55, color=color, label=f"{part} (mean {v.mean():.2f})")
        ax.set_title(f"{stage} unlearning ({stages[stage]})")
        ax.set_xlabel("OOD score  −HFE = log Σ exp(z)")
        ax.set_ylabel("density")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig, df
