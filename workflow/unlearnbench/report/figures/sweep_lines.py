"""A hyperparameter sweep as lines (MuGAN thesis Tables 7-14: synthetic-set size, learning rate):
one panel per metric, one line per study setup, x = the swept value of each method instance, mean
± std over seeds from the study tables (the retrained model's mean as a dashed line).

Reads the tables of `studies`. Options: values ({method instance: x}, required: the swept value of
every instance to draw), x_label ("value"), log_x (true), metrics (default acc_test_forget,
acc_test_retain_classmean, mia_entropy_lr), gold ("retrain": the instance drawn as the dashed line).
Data (CSV): study, dataset, model, method, x, metric, mean, std, n.
"""

from __future__ import annotations

from ...errors import UserError
from . import pyplot

READS = ("table",)
DEFAULT_METRICS = ("acc_test_forget", "acc_test_retain_classmean", "mia_entropy_lr")


def draw(runs, tables, options, device, threads):
    import pandas as pd

    from ..tables import LABELS

    values = {str(k): float(v) for k, v in dict(options.get("values", {})).items()}
    if not values:
        raise UserError("sweep_lines: options.values must map each swept method instance to its x value")
    metrics = list(options.get("metrics", DEFAULT_METRICS))
    df = pd.concat([pd.read_csv(t) for t in tables if not t.endswith(".cost.csv")], ignore_index=True)
    gold = df[(df["method"] == options.get("gold", "retrain")) & df["metric"].isin(metrics)]
    df = df[df["method"].isin(values) & df["metric"].isin(metrics)].copy()
    if df.empty:
        raise UserError(f"sweep_lines: none of {sorted(values)} is in the tables {tables}")
    df["x"] = df["method"].map(values)
    df = df.sort_values(["study", "x"])
    plt = pyplot()
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.0 * len(metrics), 3.4), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        for (study, ds, model), g in df[df.metric == m].groupby(["study", "dataset", "model"], sort=False):
            line = ax.errorbar(g["x"], g["mean"], yerr=g["std"].fillna(0), marker="o", capsize=3,
                               label=f"{study} ({ds}/{model}, n = {int(g['n'].min())})")
            ref = gold[(gold.study == study) & (gold.metric == m)]
            if len(ref):
                ax.axhline(float(ref["mean"].iloc[0]), ls="--", lw=0.8, color=line[0].get_color())
        if options.get("log_x", True):
            ax.set_xscale("log")
        ax.set_xlabel(options.get("x_label", "value"))
        ax.set_ylabel(f"{LABELS.get(m, m)} (%)")
        ax.set_title(LABELS.get(m, m), fontsize=9)
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    out = df[["study", "dataset", "model", "method", "x", "metric", "mean", "std", "n"]]
    return fig, out.reset_index(drop=True)
