"""Pipeline stages of the CLUE paper (000): the saliency-mask artefact, per-run free-energy metrics,
and the paper's figures (Fig. 2 decision space, Fig. 4 OOD-score densities, Fig. 5 cost)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from .data import to_float
from .energy import neg_free_energy
from .io import atomic_path, read_json, read_npz, write_json, write_npz
from .pipeline import load_model
from .runtime import resolve_device, seed_everything
from .saliency import compute_mask, layer_densities, mask_density, save_mask
from .tables import pyplot


# --------------------------------------------------------------------------- mask artefact
def run_clue_mask(data_path: str, request_path: str, original_ckpt: str, settings: dict, seed: int,
                  device: str, threads: int, out_mask: str, out_info: str) -> None:
    """The initial CLUE mask (Eq. 6) from the original model on the forget set."""
    seed_everything(seed, threads)
    dev = resolve_device(device)
    data, req = read_npz(data_path), read_json(request_path)
    idx = torch.as_tensor(np.asarray(req["forget"]))
    x, y = to_float(data["x"])[idx], torch.from_numpy(data["y"])[idx]
    model, _ = load_model(original_ckpt, dev)
    t0 = time.perf_counter()
    masks = compute_mask(model, x, y, dev, settings)
    secs = time.perf_counter() - t0
    dens = mask_density(masks)
    save_mask(out_mask, masks, {"settings": settings, "density": dens})
    write_json(out_info, {"settings": settings, "density": dens, "seconds": secs,
                          "n_params": int(sum(m.numel() for m in masks.values())), "layers": layer_densities(masks)})
    print(f"CLUE mask {settings}: density {dens:.4f} ({secs:.2f}s)")


# --------------------------------------------------------------------------- per-run energy metrics
def energy_metrics(logits: np.ndarray, y: np.ndarray, split: dict, req: dict, temperature: float = 1.0) -> dict[str, float]:
    """Mean -HFE (the OOD score of Liu et al.; higher = more in-distribution) on forget, retain and test."""
    score = neg_free_energy(logits, temperature)
    test = np.asarray(split["test"])
    test_retain = test[~np.isin(y[test], req["forget_classes"])] if req["type"] == "class" else test
    parts = {"forget": np.asarray(req["forget"]), "retain": np.asarray(req["retain"]), "test_retain": test_retain}
    m = {f"neg_hfe_{k}": float(score[v].mean()) for k, v in parts.items()}
    m["neg_hfe_gap"] = m["neg_hfe_retain"] - m["neg_hfe_forget"]
    return m


def run_clue_energy(outputs: str, data_path: str, split_path: str, request_path: str, out: str) -> None:
    logits = read_npz(outputs)["logits"]
    y = read_npz(data_path)["y"]
    write_json(out, {"metrics": energy_metrics(logits, y, read_json(split_path), read_json(request_path))})


# --------------------------------------------------------------------------- figures
def run_fig4(before: str, after: str, data_path: str, request_path: str, label: str, out_png: str, out_csv: str) -> None:
    """Fig. 4: density of -HFE on forget vs retain training samples, before and after unlearning."""
    import pandas as pd

    y = read_npz(data_path)["y"]
    req = read_json(request_path)
    rows = []
    for stage, path in (("before", before), ("after", after)):
        s = neg_free_energy(read_npz(path)["logits"])
        for part in ("forget", "retain"):
            idx = np.asarray(req[part])
            rows += [{"stage": stage, "set": part, "index": int(i), "label": int(y[i]), "neg_hfe": float(s[i])} for i in idx]
    df = pd.DataFrame(rows)
    with atomic_path(out_csv) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=False)
    lo, hi = df["neg_hfe"].min(), df["neg_hfe"].max()
    bins = np.linspace(lo, hi, 50)
    for ax, stage in zip(axes, ("before", "after")):
        for part, color in (("retain", "tab:blue"), ("forget", "tab:red")):
            v = df[(df.stage == stage) & (df.set == part)]["neg_hfe"]
            ax.hist(v, bins=bins, density=True, alpha=0.55, color=color, label=f"{part} (mean {v.mean():.2f})")
        ax.set_title(f"{stage} unlearning")
        ax.set_xlabel("OOD score  −HFE = log Σ exp(z)")
        ax.set_ylabel("density")
        ax.legend(fontsize=8)
    fig.suptitle(f"CLUE Fig. 4: −HFE on forget vs retain samples ({label})", fontsize=10)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


@torch.no_grad()
def _features(model, x: torch.Tensor, dev, bs: int = 512) -> tuple[np.ndarray, np.ndarray]:
    model.eval()
    feats, preds = [], []
    for i in range(0, len(x), bs):
        f = model.forward_features(x[i:i + bs].to(dev))
        feats.append(f.flatten(1).cpu())
        preds.append(model.head(f).argmax(1).cpu())
    return torch.cat(feats).numpy(), torch.cat(preds).numpy()


def run_fig2(before_ckpt: str, after_ckpt: str, data_path: str, request_path: str, max_samples: int, seed: int,
             label: str, device: str, threads: int, out_png: str, out_npz: str) -> None:
    """Fig. 2: t-SNE of penultimate features of training samples, (a) before, coloured by true label;
    (b) after, by true label; (c) after, by predicted label."""
    from sklearn.manifold import TSNE

    seed_everything(seed, threads)
    dev = resolve_device(device)
    data, req = read_npz(data_path), read_json(request_path)
    idx = np.sort(np.concatenate([np.asarray(req["forget"]), np.asarray(req["retain"])]))
    rng = np.random.default_rng(seed)
    if len(idx) > max_samples:
        idx = np.sort(rng.choice(idx, max_samples, replace=False))
    x, y = to_float(data["x"])[torch.as_tensor(idx)], data["y"][idx]
    out: dict[str, Any] = {"index": idx, "label": y}
    for stage, path in (("before", before_ckpt), ("after", after_ckpt)):
        model, _ = load_model(path, dev)
        f, p = _features(model, x, dev)
        emb = TSNE(n_components=2, init="pca", random_state=seed, perplexity=min(30, max(5, len(idx) // 10))).fit_transform(f)
        out[f"emb_{stage}"], out[f"pred_{stage}"] = emb.astype(np.float32), p
    write_npz(out_npz, **out)
    plt = pyplot()
    forget_classes = set(req["forget_classes"])
    is_forget = np.isin(y, list(forget_classes)) if req["type"] == "class" else np.isin(idx, req["forget"])
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
    panels = [("emb_before", y, "(a) before, true labels"), ("emb_after", y, "(b) after, true labels"),
              ("emb_after", out["pred_after"], "(c) after, predicted labels")]
    cmap = plt.get_cmap("tab10" if int(y.max()) < 10 else "tab20")
    for ax, (key, colour, title) in zip(axes, panels):
        e = out[key]
        ax.scatter(e[~is_forget, 0], e[~is_forget, 1], c=colour[~is_forget], cmap=cmap, vmin=0, vmax=max(9, int(y.max())), s=5)
        ax.scatter(e[is_forget, 0], e[is_forget, 1], c=colour[is_forget], cmap=cmap, vmin=0, vmax=max(9, int(y.max())),
                   s=18, marker="x", linewidths=0.8, label="forget samples")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"CLUE Fig. 2: t-SNE of features ({label}); forget class {sorted(forget_classes)}", fontsize=10)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def run_fig5(tables: list[str], out_png: str, out_csv: str) -> None:
    """Fig. 5 (and Fig. 3): unlearning time and peak memory per method, one column per study setup."""
    import pandas as pd

    df = pd.concat([pd.read_csv(t) for t in tables], ignore_index=True)
    df = df[df["metric"].isin(["time_s", "peak_mem_mb", "speedup"]) & (df["method_name"] != "original")]
    with atomic_path(out_csv) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")
    setups = list(dict.fromkeys(zip(df["study"], df["dataset"], df["model"])))
    plt = pyplot()
    fig, axes = plt.subplots(2, len(setups), figsize=(5.5 * len(setups), 6.5), squeeze=False)
    for j, (study, ds, model) in enumerate(setups):
        sub = df[(df.study == study) & (df.dataset == ds) & (df.model == model)]
        for i, (metric, ylabel, log) in enumerate((("time_s", "latency (s, log)", True), ("peak_mem_mb", "peak memory (MB)", False))):
            g = sub[sub.metric == metric]
            ax = axes[i][j]
            colors = ["tab:red" if m == "clue" else "tab:gray" if m == "retrain" else "tab:blue" for m in g["method_name"]]
            ax.bar(range(len(g)), g["mean"], yerr=g["std"].fillna(0), color=colors)
            ax.set_xticks(range(len(g)), g["method"], rotation=45, ha="right", fontsize=8)
            ax.set_ylabel(ylabel)
            if log:
                ax.set_yscale("log")
            ax.set_title(f"{ds}/{model}", fontsize=9)
    fig.suptitle("CLUE Fig. 5: unlearning latency and peak memory (retrain = training time / memory)", fontsize=10)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
