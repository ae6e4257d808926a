"""Per-class test accuracy with every class in turn as the forget target (MuGAN thesis, Figs 8-10):
one heatmap per method, rows = the forgotten class (the run's scenario), columns = the test accuracy
of each class after unlearning, mean over the selected seeds (cell text; n in the panel title).
A retrained model gives a dark diagonal and bright cells elsewhere.

Runs: a study whose scenarios forget one class each (e.g. every class in turn); `select` picks the
methods (one panel each, in the study's order) and seeds. Options: annotate (true: print the
accuracy in each cell), cmap ("viridis").
Data (CSV): method, forget_class, class, mean accuracy, std over seeds, n.
"""

from __future__ import annotations

from ...errors import UserError
from ...io import read_json, read_npz
from . import pyplot

READS = ("outputs", "data", "split", "request")


def _per_class_test_accuracy(logits, y, test_idx, num_classes):

    pred = logits[test_idx].argmax(1)
    yt = y[test_idx]
    return [float((pred[yt == c] == c).mean() * 100) if (yt == c).any() else float("nan") for c in range(num_classes)]


def draw(runs, tables, options, device, threads):
    import numpy as np
    import pandas as pd

    cache: dict[str, object] = {}

    def load(path, reader):
        if path not in cache:
            cache[path] = reader(path)
        return cache[path]

    rows = []
    for r in runs:
        f = r["files"]
        req = load(f["request"], read_json)
        if req.get("type") != "class" or len(req.get("forget_classes", [])) != 1:
            raise UserError(f"class_heatmap: scenario {r['scenario']!r} must forget exactly one class")
        d = load(f["data"], read_npz)
        y = d["y"].astype(np.int64)
        k = len(d["class_names"])
        test = np.asarray(load(f["split"], read_json)["test"], dtype=np.int64)
        acc = _per_class_test_accuracy(read_npz(f["outputs"])["logits"], y, test, k)
        for c, a in enumerate(acc):
            rows.append({"dataset": r["dataset"], "model": r["model"], "method": r["method"], "seed": r["seed"],
                         "forget_class": int(req["forget_classes"][0]), "class": c, "accuracy": a})
    raw = pd.DataFrame(rows)
    keys = ["dataset", "model", "method", "forget_class", "class"]
    df = raw.groupby(keys, sort=False)["accuracy"].agg(["mean", "std", "count"]).reset_index()
    df = df.rename(columns={"mean": "accuracy", "count": "n"})
    panels = list(dict.fromkeys(zip(df["dataset"], df["model"], df["method"])))
    plt = pyplot()
    annotate = bool(options.get("annotate", True))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.2), squeeze=False)
    for ax, (ds, model, method) in zip(axes[0], panels):
        sub = df[(df.dataset == ds) & (df.model == model) & (df.method == method)]
        targets = sorted(sub["forget_class"].unique())
        classes = sorted(sub["class"].unique())
        grid = sub.pivot(index="forget_class", columns="class", values="accuracy").reindex(index=targets, columns=classes)
        im = ax.imshow(grid.to_numpy(), vmin=0, vmax=100, cmap=options.get("cmap", "viridis"), aspect="equal")
        if annotate:
            for i in range(len(targets)):
                for j in range(len(classes)):
                    v = grid.iat[i, j]
                    if not np.isnan(v):
                        ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=6,
                                color="white" if v < 50 else "black")
        n = int(sub["n"].min())
        ax.set_title(f"{method} ({ds}/{model}, n = {n} seed{'s' if n != 1 else ''})", fontsize=8)
        ax.set_xticks(range(len(classes)), classes, fontsize=7)
        ax.set_yticks(range(len(targets)), targets, fontsize=7)
        ax.set_xlabel("class (test accuracy %)", fontsize=8)
        ax.set_ylabel("forgotten class", fontsize=8)
    fig.colorbar(im, ax=list(axes[0]), shrink=0.8, label="test accuracy (%)")
    return fig, df
