"""Helpers shared by figure kinds: grouping runs into panels (one per setup and scenario), features."""

from __future__ import annotations

import torch


def panels(runs: list[dict]) -> dict[tuple, list[dict]]:
    """{(dataset, model, scenario): runs} in first-seen order."""
    out: dict[tuple, list[dict]] = {}
    for r in runs:
        out.setdefault((r["dataset"], r["model"], r["scenario"]), []).append(r)
    return out


def by_method(runs: list[dict], method: str) -> dict:
    """The first run of `method` (the figure's first selected seed)."""
    for r in runs:
        if r["method"] == method:
            return r
    raise KeyError(method)


def title(key: tuple) -> str:
    return f"{key[0]}/{key[1]} — {key[2]}"


def features_and_logits(model, x, dev, bs: int = 512):
    """(penultimate features [N, D], logits [N, K]) as numpy arrays, in eval mode, batch by batch."""

    model.eval()
    feats, logits = [], []
    with torch.no_grad():
        for i in range(0, len(x), bs):
            f = model.forward_features(x[i:i + bs].to(dev)).flatten(1)
            feats.append(f.cpu())
            logits.append(model.head(f).cpu())
    return torch.cat(feats).numpy(), torch.cat(logits).numpy()
