"""t-SNE of real and generated samples in a model's feature space (UISPS Fig. 3): penultimate
features of the original model on the real training samples (forgotten classes red, retained
classes in colour) and on the synthetic replacement samples an inversion-based run consumed (black;
the entropy-regularised subset as crosses). One joint embedding per (setup, scenario), one panel per
selected inversion run (e.g. with and without the entropy term), so real points sit at the same
place in every panel.

Runs: the figure's selection must hold the `features` run (default "original": whose checkpoint
gives the features) and one or more runs of methods that record their inversion files in
unlearn.json (`info.artefact_files.inversion`, written by uisps); the synthetic samples are read
from there (the run's checkpoint is a declared input, so the files exist).
Options: features ("original"), max_real (600: real samples, stratified by class), seed (0),
perplexity (30, capped by the sample count), neighbours (5: k of the nearest-real-neighbour share).

Data (CSV): every plotted point with its embedding, class, kind (real / generated), the panel's run,
the original's max-softmax confidence and entropy, and for generated points the share of their k
nearest real neighbours (feature space, Euclidean) that belong to a forgotten class: a number for
the paper's claim that "the features of the generated data closely align with those of the data
that need to be replaced" (1.0 = every neighbour is a forgotten-class sample).
"""

from __future__ import annotations

import os

from ...data import to_float
from ...errors import UserError
from ...io import read_json, read_npz
from ...parts.inversion import load_inversion
from ...runtime import resolve_device, seed_everything
from . import pyplot

READS = ("checkpoint", "data", "request")


def _features(model, x, dev):
    """(features, class probabilities) of x."""
    import torch

    from ._panels import features_and_logits

    f, logits = features_and_logits(model, x, dev, bs=256)
    return f, torch.softmax(torch.from_numpy(logits), 1).numpy()


def _inversion_of(run: dict) -> tuple[list[str], int]:
    """(inversion files, entropy-subset size per class) of a run, from its unlearn.json."""

    path = os.path.join(os.path.dirname(run["files"]["checkpoint"]), "unlearn.json")
    if not os.path.exists(path):
        raise UserError(f"figure tsne_synthetic: {run['method']} has no unlearn.json ({path}); select inversion-based "
                        "runs (uisps) besides the features run")
    rec = read_json(path)
    files = rec.get("info", {}).get("artefact_files", {}).get("inversion")
    if not files:
        raise UserError(f"figure tsne_synthetic: run {run['method']} recorded no inversion files in {path}; "
                        "select uisps runs (rerun them if they predate this figure kind)")
    hp = rec.get("hparams", {})
    n_sub = int(round(float(hp.get("inv_entropy_fraction", 0.0)) * int(hp.get("inv_samples", 0))))
    return files, n_sub


def draw(runs, tables, options, device, threads):
    import numpy as np
    import pandas as pd
    import torch
    from sklearn.manifold import TSNE

    from ...models.checkpoint import load_model
    from ._panels import panels, title

    seed = int(options.get("seed", 0))
    seed_everything(seed, threads)
    dev = resolve_device(device)
    feat_method = options.get("features", "original")
    max_real, k_nn = int(options.get("max_real", 600)), int(options.get("neighbours", 5))
    groups = panels(runs)
    rows, layout = [], []
    for key, rs in groups.items():
        feat_run = next((r for r in rs if r["method"] == feat_method), None)
        if feat_run is None:
            raise UserError(f"figure tsne_synthetic: the selection has no {feat_method!r} run for {title(key)}")
        variants = []
        for r in rs:
            if r["method"] != feat_method and r["method"] not in {v["method"] for v in variants}:
                files, n_sub = _inversion_of(r)
                variants.append({"method": r["method"], "files": files, "n_sub": n_sub})
        if not variants:
            raise UserError(f"figure tsne_synthetic: select at least one inversion-based run besides {feat_method!r}")
        data, req = read_npz(feat_run["files"]["data"]), read_json(feat_run["files"]["request"])
        forget_classes = sorted(req["forget_classes"])
        idx = np.sort(np.concatenate([np.asarray(req["forget"]), np.asarray(req["retain"])]))
        y_all = data["y"][idx]
        if len(idx) > max_real:  # stratified by class
            rng = np.random.default_rng(seed)
            per = max(1, max_real // len(np.unique(y_all)))
            idx = np.sort(np.concatenate([rng.permutation(idx[y_all == c])[:per] for c in np.unique(y_all)]))
        x_real, y_real = to_float(data["x"])[torch.as_tensor(idx)], data["y"][idx]
        model, _ = load_model(feat_run["files"]["checkpoint"], dev)
        f_real, p_real = _features(model, x_real, dev)
        shape = tuple(x_real.shape[1:])
        blocks = [(f_real, p_real, y_real, "real", None, np.zeros(len(idx), bool))]
        for v in variants:
            syn = load_inversion(v["files"], shape)
            for c in sorted(syn):
                f, p = _features(model, syn[c], dev)
                sub = np.arange(len(syn[c])) < v["n_sub"]
                blocks.append((f, p, np.full(len(f), c), "generated", v["method"], sub))
        feats = np.concatenate([b[0] for b in blocks])
        perplexity = min(float(options.get("perplexity", 30)), max(5.0, (len(feats) - 1) / 3))
        emb = TSNE(n_components=2, init="pca", random_state=seed, perplexity=perplexity).fit_transform(feats)
        is_forget_real = np.isin(y_real, forget_classes)
        start = 0
        for f, p, y, kind, method, sub in blocks:
            e = emb[start:start + len(f)]
            start += len(f)
            share = np.full(len(f), np.nan)
            if kind == "generated":  # k nearest real neighbours in feature space
                d = (f ** 2).sum(1)[:, None] + (f_real ** 2).sum(1)[None, :] - 2.0 * f @ f_real.T
                nn = np.argsort(d, 1)[:, :k_nn]
                share = is_forget_real[nn].mean(1)
            ent = -(p * np.log(np.clip(p, 1e-12, 1))).sum(1)
            for i in range(len(f)):
                rows.append({"dataset": key[0], "model": key[1], "scenario": key[2], "kind": kind,
                             "run": method or "", "label": int(y[i]), "forget_class": bool(int(y[i]) in forget_classes),
                             "entropy_subset": bool(sub[i]), "x": float(e[i, 0]), "y": float(e[i, 1]),
                             "confidence": float(p[i].max()), "entropy": float(ent[i]), "nn_forget_share": float(share[i])})
        layout.append((key, [v["method"] for v in variants]))
    df = pd.DataFrame(rows)
    plt = pyplot()
    ncol = max(len(v) for _, v in layout)
    fig, axes = plt.subplots(len(layout), ncol, figsize=(4.4 * ncol, 4.0 * len(layout)), squeeze=False)
    cmap = plt.get_cmap("tab10")
    for row, (key, methods) in zip(axes, layout):
        cell = df[(df.dataset == key[0]) & (df.model == key[1]) & (df.scenario == key[2])]
        real = cell[cell.kind == "real"]
        for ax, m in zip(row, methods):
            keep = real[~real.forget_class]
            ax.scatter(keep.x, keep.y, c=[cmap(int(c) % 10) for c in keep.label], s=5, alpha=0.35, linewidths=0)
            fr = real[real.forget_class]
            ax.scatter(fr.x, fr.y, c="red", s=9, alpha=0.8, linewidths=0, label="forgotten class (real)")
            gen = cell[(cell.kind == "generated") & (cell.run == m)]
            for sub, marker, name in ((False, "o", "generated"), (True, "x", "generated, entropy subset")):
                g = gen[gen.entropy_subset == sub]
                if len(g):
                    ax.scatter(g.x, g.y, c="black", s=16, marker=marker, linewidths=0.9 if marker == "x" else 0, label=name)
            share = gen.nn_forget_share.mean()
            ax.set_title(f"{title(key)}\n{m}: {k_nn}-NN forgotten-class share {share:.2f}, "
                         f"conf {gen.confidence.mean():.2f}", fontsize=8)
            ax.set_xticks([]), ax.set_yticks([])
            ax.legend(fontsize=6, loc="lower right")
        for ax in row[len(methods):]:
            ax.axis("off")
    fig.tight_layout()
    return fig, df
