"""The synthetic samples a generator-based run unlearned with (MuGAN thesis Fig. 3: the output of
zMuGAN's model inversion; MuGAN's per-class GANs): one panel per selected run (the first selected
seed of each method), a row per class with evenly spaced accepted samples, the acceptance rate of
the argmax filter per class in the row label.

Runs: runs of methods that record their synthetic set in unlearn.json (`info.synthetic_file`:
mugan, zmugan); the run's checkpoint is the declared input, its unlearn.json sits next to it.
Options: per_class (10 samples per row).
Data (CSV): method, setup, class, samples in the set, acceptance rate.
"""

from __future__ import annotations

import os

from ...errors import UserError
from ...io import read_json
from . import pyplot

READS = ("checkpoint",)


def draw(runs, tables, options, device, threads):
    import numpy as np
    import pandas as pd

    from ...parts.synthetic import class_grid, load_synthetic

    per_row = int(options.get("per_class", 10))
    chosen, rows = {}, []
    for r in runs:
        chosen.setdefault((r["dataset"], r["model"], r["scenario"], r["method"]), r)
    plt = pyplot()
    fig, axes = plt.subplots(1, len(chosen), figsize=(0.35 * per_row * len(chosen) + 1.0, 4.6), squeeze=False)
    for ax, (key, r) in zip(axes[0], chosen.items()):
        info = read_json(os.path.join(os.path.dirname(r["files"]["checkpoint"]), "unlearn.json")).get("info", {})
        path = info.get("synthetic_file")
        if not path:
            raise UserError(f"synthetic_grid: run {r['method']} (seed {r['seed']}) recorded no synthetic set; "
                            "select mugan / zmugan runs")
        x, y, meta = load_synthetic(path)
        x, y = x.numpy(), y.numpy()
        k = len(meta["accept_rate"])
        c, h = x.shape[1], x.shape[2]
        grid = class_grid(x, y, k, per_row)
        for cls in range(k):
            rows.append({"method": r["method"], "dataset": key[0], "model": key[1], "seed": r["seed"], "class": cls,
                         "samples": int((y == cls).sum()), "accept_rate": float(meta["accept_rate"][cls])})
        ax.imshow(np.clip(grid[..., 0] if c == 1 else grid, 0, 1), cmap="gray" if c == 1 else None,
                  interpolation="nearest", vmin=0, vmax=1)
        ax.set_yticks([i * (h + 1) + h / 2 for i in range(k)],
                      [f"{i} ({meta['accept_rate'][i]:.0%})" for i in range(k)], fontsize=6)
        ax.set_xticks([])
        ax.set_title(f"{r['method']} ({key[0]}/{key[1]}, seed {r['seed']})\nclass (filter acceptance)", fontsize=7)
    fig.tight_layout()
    return fig, pd.DataFrame(rows)
