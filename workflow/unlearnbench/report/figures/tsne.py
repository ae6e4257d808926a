"""t-SNE of penultimate features of training samples (CLUE Fig. 2): (a) before unlearning, true
labels; (b) after, true labels; (c) after, predicted labels; forget samples marked. Options:
before, after (method instances), max_samples (1000), seed (0)."""

from __future__ import annotations

from ...data import to_float
from ...io import read_json, read_npz
from ...runtime import resolve_device, seed_everything
from . import pyplot

READS = ("checkpoint", "data", "request")


def draw(runs, tables, options, device, threads):
    import numpy as np
    import pandas as pd
    import torch
    from sklearn.manifold import TSNE

    from ...models.checkpoint import load_model
    from ._panels import by_method, features_and_logits

    seed = int(options.get("seed", 0))
    seed_everything(seed, threads)
    dev = resolve_device(device)
    methods = list(dict.fromkeys(r["method"] for r in runs))
    stages = {"before": options.get("before", methods[0]), "after": options.get("after", methods[-1])}
    first = by_method(runs, stages["before"])
    data, req = read_npz(first["files"]["data"]), read_json(first["files"]["request"])
    idx = np.sort(np.concatenate([np.asarray(req["forget"]), np.asarray(req["retain"])]))
    max_samples = int(options.get("max_samples", 1000))
    if len(idx) > max_samples:
        idx = np.sort(np.random.default_rng(seed).choice(idx, max_samples, replace=False))
    x, y = to_float(data["x"])[torch.as_tensor(idx)], data["y"][idx]
    out = {"index": idx, "label": y}
    for stage, method in stages.items():
        model, _ = load_model(by_method(runs, method)["files"]["checkpoint"], dev)
        f, logits = features_and_logits(model, x, dev)
        p = logits.argmax(1)
        emb = TSNE(n_components=2, init="pca", random_state=seed, perplexity=min(30, max(5, len(idx) // 10))).fit_transform(f)
        out[f"x_{stage}"], out[f"y_{stage}"], out[f"pred_{stage}"] = emb[:, 0], emb[:, 1], p
    df = pd.DataFrame(out)
    plt = pyplot()
    forget_classes = sorted(req["forget_classes"])
    is_forget = np.isin(y, forget_classes) if req["type"] == "class" else np.isin(idx, req["forget"])
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
    panels = [("before", y, f"(a) before ({stages['before']}), true labels"),
              ("after", y, f"(b) after ({stages['after']}), true labels"),
              ("after", df["pred_after"].to_numpy(), "(c) after, predicted labels")]
    cmap = plt.get_cmap("tab10" if int(y.max()) < 10 else "tab20")
    vmax = max(9, int(y.max()))
    for ax, (stage, colour, name) in zip(axes, panels):
        e = np.stack([df[f"x_{stage}"], df[f"y_{stage}"]], 1)
        ax.scatter(e[~is_forget, 0], e[~is_forget, 1], c=colour[~is_forget], cmap=cmap, vmin=0, vmax=vmax, s=5)
        ax.scatter(e[is_forget, 0], e[is_forget, 1], c=colour[is_forget], cmap=cmap, vmin=0, vmax=vmax,
                   s=18, marker="x", linewidths=0.8, label="forget samples")
        ax.set_title(name, fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig, df
