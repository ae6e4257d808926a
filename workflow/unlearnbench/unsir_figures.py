"""UNSIR's Figs 2-4 from the per-run metrics.json files written by `evaluate`:
Fig 2: forget-class prediction distribution of the UNSIR model; Fig 3: the same next to the
retrained model's; Fig 4: layer-wise weight distance to the original (UNSIR vs retrain), log scale.
Data files: unsir_fig2.csv (both models' histograms, also Fig 3's data) and unsir_fig4.csv."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from .io import atomic_path, read_json
from .tables import pyplot


def _panels(runs: list[dict[str, Any]], files: list[str]) -> dict[tuple, dict[str, dict]]:
    panels: dict[tuple, dict[str, dict]] = {}
    for r, f in zip(runs, files):
        panels.setdefault((r["dataset"], r["model"], r["scenario"]), {})[r["role"]] = {**read_json(f), "method": r["method"]}
    return panels


def layer_order(name: str) -> tuple:
    """Network order from parameter names (metrics.json stores them sorted): stem first, head
    last, numbered blocks in numeric order."""
    rank = 0 if ".stem" in name else 2 if ".head" in name else 1
    return rank, [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def figure_frames(runs: list[dict[str, Any]], files: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    hist_rows, dist_rows = [], []
    for (ds, model, sc), roles in _panels(runs, files).items():
        for role, m in roles.items():
            for c, v in enumerate(m["forget_pred_hist"]):
                hist_rows.append({"dataset": ds, "model": model, "scenario": sc, "model_kind": role,
                                  "method": m["method"], "predicted_class": c, "fraction": v})
        u, r = roles["unsir"]["layer_dist_original"], roles["retrain"]["layer_dist_original"]
        for i, layer in enumerate(sorted(u, key=layer_order)):
            dist_rows.append({"dataset": ds, "model": model, "scenario": sc, "index": i, "layer": layer,
                              "unsir_vs_original": u[layer], "retrain_vs_original": r.get(layer, np.nan)})
    return pd.DataFrame(hist_rows), pd.DataFrame(dist_rows)


def write_unsir_figures(runs: list[dict[str, Any]], files: list[str], out: Any) -> None:
    plt = pyplot()
    hist, dist = figure_frames(runs, files)
    with atomic_path(out.data2) as tmp:
        hist.to_csv(tmp, index=False, float_format="%.6g")
    with atomic_path(out.data4) as tmp:
        dist.to_csv(tmp, index=False, float_format="%.6g")
    panels = list(dict.fromkeys(zip(hist["dataset"], hist["model"], hist["scenario"])))

    def grid(kinds, path, title):
        fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.0), squeeze=False)
        for ax, key in zip(axes[0], panels):
            sub = hist[(hist["dataset"] == key[0]) & (hist["model"] == key[1]) & (hist["scenario"] == key[2])]
            w = 0.8 / len(kinds)
            for i, k in enumerate(kinds):
                h = sub[sub["model_kind"] == k]
                ax.bar(h["predicted_class"] + (i - (len(kinds) - 1) / 2) * w, h["fraction"], w, label=k)
            ax.set_title(f"{key[0]}/{key[1]} — {key[2]}", fontsize=8)
            ax.set_xlabel("predicted class")
            ax.set_ylabel("fraction of forget samples")
            ax.legend(fontsize=7)
        fig.suptitle(title, fontsize=9)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
        plt.close(fig)

    grid(["unsir"], out.fig2, "UNSIR Fig. 2: predictions of the UNSIR model on the forget class(es)")
    grid(["retrain", "unsir"], out.fig3, "UNSIR Fig. 3: forget-class predictions, retrained vs UNSIR")

    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.0), squeeze=False)
    for ax, key in zip(axes[0], panels):
        sub = dist[(dist["dataset"] == key[0]) & (dist["model"] == key[1]) & (dist["scenario"] == key[2])]
        ax.plot(sub["index"], sub["retrain_vs_original"], "o-", ms=2, label="retrain vs original")
        ax.plot(sub["index"], sub["unsir_vs_original"], "s-", ms=2, label="UNSIR vs original")
        ax.set_yscale("log")
        ax.set_title(f"{key[0]}/{key[1]} — {key[2]}", fontsize=8)
        ax.set_xlabel("parameter tensor (layer order)")
        ax.set_ylabel("L2 distance")
        ax.legend(fontsize=7)
    fig.suptitle("UNSIR Fig. 4: layer-wise weight distance to the original model", fontsize=9)
    fig.tight_layout()
    with atomic_path(out.fig4) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
