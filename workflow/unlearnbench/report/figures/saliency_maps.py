"""Where each model looks on the same test images (UNSIR Fig. 5: Grad-CAM of the original and the
unlearned ResNet-18; CLUE Table 6: ViT attention maps before and after unlearning): one row per
image, one column per selected method (e.g. original, retrain, the unlearning method), each map
drawn over the image. Images of the forgotten class(es) and of retained classes, from the test
split (a random-forgetting request: its forget samples instead). One block of rows per (setup,
scenario) of the selection, first selected seed. Maps: figures/_saliency.py (Grad-CAM at the last
conv block; attention rollout for a ViT); the layer or method used is written under the figure.

Options: methods (column order; default the selection's order); map ("auto": rollout for a ViT,
else Grad-CAM; "gradcam"; "rollout"); target (Grad-CAM's class: "label", the image's true class,
default; or "pred", each model's own prediction); min_size (Grad-CAM: the last block whose map is
at least this many cells a side, default 1 = the last conv block); classes (explicit classes, one
block of images each, e.g. [0, 2, 6]; default n_forget images of the forget classes then n_retain of
the retained ones, classes taken in turn); n_forget (2), n_retain (2), per_class (with classes, 1);
normalize ("map": each map scaled to its own maximum, as Grad-CAM is usually shown, default; "row":
every map of an image by the largest of that row, so a model that lost its evidence shows it);
seed (0: which images of a class).
Data (CSV): one row per map cell: the image (index, label, role), the method, its prediction and
probability of the label, the map's raw value and drawn value.
"""

from __future__ import annotations

import textwrap

from ...data import to_float
from ...errors import UserError
from ...io import read_json, read_npz
from ...runtime import resolve_device, seed_everything
from . import pyplot

READS = ("checkpoint", "data", "split", "request")


def pick_images(y, pool_forget, pool_retain, forget_classes, options) -> list[tuple[int, int, str]]:
    """[(archive index, label, "forget" | "retain")] of the images a block of rows shows."""
    import numpy as np

    rng = np.random.default_rng(int(options.get("seed", 0)))
    forget_classes = sorted(int(c) for c in forget_classes)
    used: set[int] = set()

    def take(pool, cls, role, k):
        cand = [int(i) for i in pool if int(y[i]) == cls and int(i) not in used]
        if not cand:
            return []
        got = sorted(int(i) for i in rng.choice(cand, min(k, len(cand)), replace=False))
        used.update(got)
        return [(i, cls, role) for i in got]

    out = []
    if options.get("classes") is not None:
        for c in options["classes"]:
            role = "forget" if int(c) in forget_classes else "retain"
            out += take(pool_forget if role == "forget" else pool_retain, int(c), role, int(options.get("per_class", 1)))
        return out
    retained = sorted({int(c) for c in y[pool_retain]} - set(forget_classes))
    for role, pool, classes, n in (("forget", pool_forget, forget_classes, int(options.get("n_forget", 2))),
                                   ("retain", pool_retain, retained, int(options.get("n_retain", 2)))):
        k, tries = 0, n * len(classes)
        while n > 0 and k < tries:  # classes in turn, one image each, until n (or no class has one left)
            got = take(pool, classes[k % len(classes)], role, 1)
            out += got
            n -= len(got)
            k += 1
    return out


def compute_maps(model, x, labels, kind: str, target: str, min_size: int):
    """(raw maps [N, h, w], probabilities [N, K], description) of one model on images x."""
    import torch

    from ._saliency import attention_modules, attention_rollout, grad_cam

    kind = ("rollout" if attention_modules(model) else "gradcam") if kind == "auto" else kind
    if kind == "rollout":
        maps, logits, what = attention_rollout(model, x)
    elif kind == "gradcam":
        if target == "pred":
            with torch.no_grad():
                cls = model(x).argmax(1)
        else:
            cls = labels
        maps, logits, name = grad_cam(model, x, cls, min_size)
        what = f"Grad-CAM of the {'predicted' if target == 'pred' else 'true'} class at {name} ({maps.shape[-2]}×{maps.shape[-1]} map)"
    else:
        raise UserError(f"saliency_maps: unknown map {kind!r}; use auto, gradcam or rollout")
    return maps.cpu(), logits.softmax(1).cpu(), what


def draw(runs, tables, options, device, threads):
    import numpy as np
    import pandas as pd
    import torch

    from ...models.checkpoint import load_model
    from ._saliency import upsample

    seed_everything(int(options.get("seed", 0)), threads)
    dev = resolve_device(device)
    target = options.get("target", "label")
    if target not in ("label", "pred"):
        raise UserError(f"saliency_maps: target must be label or pred, not {target!r}")
    normalize = options.get("normalize", "map")
    if normalize not in ("map", "row"):
        raise UserError(f"saliency_maps: normalize must be map or row, not {normalize!r}")
    methods = list(options.get("methods") or dict.fromkeys(r["method"] for r in runs))
    groups: dict[tuple, dict[str, dict]] = {}
    for r in runs:  # (setup, scenario) -> {method: its first selected seed's run}
        groups.setdefault((r["dataset"], r["model"], r["training"], r["scenario"]), {}).setdefault(r["method"], r)
    cache: dict[str, object] = {}

    def load(path, reader):
        if path not in cache:
            cache[path] = reader(path)
        return cache[path]

    rows, blocks, notes = [], [], {}
    for key, by_method in groups.items():
        missing = [m for m in methods if m not in by_method]
        if missing:
            raise UserError(f"saliency_maps: method {missing[0]!r} has no run in {key[0]}/{key[1]}/{key[3]} of the selection")
        f = by_method[methods[0]]["files"]
        d, split, req = load(f["data"], read_npz), load(f["split"], read_json), load(f["request"], read_json)
        y = d["y"].astype(np.int64)
        test = np.asarray(split["test"], dtype=np.int64)
        pool_forget = np.asarray(req["forget"], dtype=np.int64) if req["type"] != "class" else test[np.isin(y[test], req["forget_classes"])]
        pool_retain = test[~np.isin(y[test], req["forget_classes"])] if req["type"] == "class" else test
        images = pick_images(y, pool_forget, pool_retain, req["forget_classes"], options)
        if not images:
            raise UserError(f"saliency_maps: no test image of the chosen classes in {key[0]}/{key[3]}")
        idx = np.asarray([i for i, _, _ in images])
        x = to_float(d["x"][idx])
        labels = torch.as_tensor(y[idx])
        maps = {}
        for m in methods:
            model, _ = load_model(by_method[m]["files"]["checkpoint"], dev)
            raw, prob, what = compute_maps(model, x.to(dev), labels.to(dev), options.get("map", "auto"),
                                           target, int(options.get("min_size", 1)))
            maps[m] = (raw, prob)
            notes.setdefault(f"{key[1]} on {key[0]}: {what}", None)
        scale = {m: raw.flatten(1).amax(1) for m, (raw, _) in maps.items()}
        if normalize == "row":
            top = torch.stack(list(scale.values())).amax(0)
            scale = {m: top for m in maps}
        for j, (i, label, role) in enumerate(images):
            for m, (raw, prob) in maps.items():
                s = float(scale[m][j])
                pred = int(prob[j].argmax())
                for (a, b), v in np.ndenumerate(raw[j].numpy()):
                    rows.append({"dataset": key[0], "model": key[1], "scenario": key[3], "seed": by_method[m]["seed"],
                                 "index": i, "label": label, "role": role, "method": m, "pred": pred,
                                 "p_label": float(prob[j, label]), "row": a, "col": b, "value": float(v),
                                 "drawn": float(v) / s if s > 0 else 0.0})
        names = [str(n) for n in d["class_names"]]
        blocks.append((key, images, x, maps, scale, names))
    df = pd.DataFrame(rows)

    plt = pyplot()
    n_rows = sum(len(b[1]) for b in blocks)
    fig, axes = plt.subplots(n_rows, len(methods) + 1, figsize=(1.9 * (len(methods) + 1), 2.1 * n_rows + 0.8),
                             squeeze=False)
    r = 0
    for key, images, x, maps, scale, names in blocks:
        size = tuple(x.shape[-2:])
        up = {m: upsample(raw, size) for m, (raw, _) in maps.items()}
        for j, (i, label, role) in enumerate(images):
            img = x[j].permute(1, 2, 0).numpy()
            img = img[..., 0] if img.shape[-1] == 1 else img
            ax = axes[r][0]
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
            name = f" ({names[label]})" if names[label] != str(label) else ""
            ax.set_ylabel(f"{role} · class {label}{name}\n{key[3]}", fontsize=7)
            ax.set_title("input" if r == 0 else "", fontsize=8)
            for c, m in enumerate(methods, start=1):
                ax = axes[r][c]
                s = float(scale[m][j])
                ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
                ax.imshow((up[m][j] / s if s > 0 else up[m][j] * 0).numpy(), cmap="jet", alpha=0.5, vmin=0, vmax=1)
                prob = maps[m][1][j]
                ax.set_xlabel(f"pred {int(prob.argmax())} · p({label}) {float(prob[label]):.2f}", fontsize=7)
                if r == 0:
                    ax.set_title(m, fontsize=8)
            for ax in axes[r]:
                ax.set_xticks([]), ax.set_yticks([])
            r += 1
    scale_text = "each map scaled to its own maximum" if normalize == "map" else "maps of a row on one scale (its largest map)"
    width = int(19 * (len(methods) + 1))  # characters per line of the note under the panels
    fig.supxlabel(textwrap.fill("; ".join(notes) + f"; {scale_text}.", width), fontsize=7)
    fig.tight_layout()
    return fig, df
