"""Metrics of one unlearned model (percentages unless stated), computed from saved outputs.

Names are explicit so each paper's table convention can be rendered from them:
  acc_forget       accuracy on the forget set (training samples to forget)
  acc_retain       accuracy on the retain set
  acc_test_retain  test accuracy on retained classes (all test samples for random forgetting)
  acc_test_forget  test accuracy on forgotten classes (NaN for random forgetting)
  acc_val          validation accuracy (retained classes)
  acc_val_forget   validation accuracy on forgotten classes (NaN for random forgetting; tuning)
  acc_test_retain_classmean  unweighted mean of the retained classes' test accuracies (MuGAN's D_r)
  mia_svc_efficacy SalUn's MIA-efficacy: % of forget samples the SVC calls NON-member
  mia_entropy_lr, mia_prob_lr, mia_sm_*: % of forget samples called member
  mia_thesis       the MuGAN thesis' MIA as its code computes it (mia.thesis_mia): % of forget samples
                   called member by one entropy attack fitted on all retain vs all test samples; not in
                   metrics.json: rule mia_thesis writes it when a study asks for extras [mia_thesis]
  mia_*_bacc, mia_*_bacc_low: that attack's own balanced accuracy on held-out shadow data (members =
                   retain samples, non-members = test samples of retained classes) and the lower end of
                   its 95 % Wilson interval; <= 0.5 means the attack is at chance (its score: no signal)
  js_forget_pred   JS divergence (base 2) between the forget-set prediction histograms of this
                   model and of the retrained model
  dist_original / dist_retrain: L2 distance of all parameters to the original / retrained model
  sparsity         fraction of zero conv weights (95 % for a pruned original and its unlearned models)
  nonfinite_outputs number of samples whose logits hold a NaN or an infinity (a destroyed model, e.g. an
                   influence step too large); written only when > 0. Such a sample has no prediction: it
                   counts as wrong in every accuracy, is left out of the prediction histogram, and the
                   attacks see uniform probabilities for it (no information).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data import RequestData
from ..io import read_npz, write_json
from .mia import Shadow, evaluate_attacks, metric_name, thesis_mia


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax; a row with a non-finite logit gets uniform probabilities."""
    logits = np.where(np.isfinite(logits).all(1, keepdims=True), logits, 0.0)
    z = logits - logits.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def predictions(logits: np.ndarray) -> np.ndarray:
    """Argmax per row; -1 (no prediction) for a row with a non-finite logit."""
    return np.where(np.isfinite(logits).all(1), logits.argmax(1), -1)


def accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    return float((predictions(logits) == y).mean() * 100) if len(y) else float("nan")


def prediction_histogram(logits: np.ndarray, num_classes: int) -> np.ndarray:
    """Fraction of samples predicted as each class (samples without a prediction left out)."""
    pred = predictions(logits)
    counts = np.bincount(pred[pred >= 0], minlength=num_classes).astype(float)
    return counts / max(counts.sum(), 1)


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence in bits (0 = identical, 1 = disjoint)."""
    p, q = np.asarray(p, float), np.asarray(q, float)
    m = 0.5 * (p + q)

    def kl(a, b):
        mask = a > 0
        return float((a[mask] * np.log2(a[mask] / b[mask])).sum())

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def weight_distance(a: dict[str, np.ndarray], b: dict[str, np.ndarray], param_names: list[str]) -> dict[str, Any]:
    """Per-layer and total L2 distance over parameters (BatchNorm buffers excluded)."""
    layers = {k: float(np.linalg.norm((a[k].astype(np.float64) - b[k].astype(np.float64)).ravel())) for k in param_names}
    total = float(np.sqrt(sum(v ** 2 for v in layers.values())))
    return {"total": total, "layers": layers}


def conv_sparsity(state: dict[str, np.ndarray]) -> float:
    """Fraction of exactly-zero entries among the conv weights (4-D parameters) of a model."""
    conv = [v for v in state.values() if v.ndim == 4]
    n = sum(v.size for v in conv)
    return float(sum(int((v == 0).sum()) for v in conv) / n) if n else 0.0


def compute_metrics(
    logits: np.ndarray,
    y: np.ndarray,
    split: dict[str, np.ndarray],
    request: dict[str, Any],
    num_classes: int,
    retrain_logits: np.ndarray | None = None,
    seed: int = 0,
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Accuracies, MIAs and forget-prediction divergence from logits over the pooled data.

    Returns (metrics, per-sample MIA member flags on the forget set).
    """
    forget, retain = np.asarray(request["forget"]), np.asarray(request["retain"])
    fc = list(request["forget_classes"])
    test, val = np.asarray(split["test"]), np.asarray(split["val"])
    test_f = test[np.isin(y[test], fc)]
    test_r = test[~np.isin(y[test], fc)]
    val_r = val[~np.isin(y[val], fc)]
    val_f = val[np.isin(y[val], fc)]
    m = {
        "acc_forget": accuracy(logits[forget], y[forget]),
        "acc_retain": accuracy(logits[retain], y[retain]),
        "acc_test_retain": accuracy(logits[test_r], y[test_r]),
        "acc_test_forget": accuracy(logits[test_f], y[test_f]) if fc else float("nan"),
        "acc_val": accuracy(logits[val_r], y[val_r]),
        "acc_val_forget": accuracy(logits[val_f], y[val_f]) if fc else float("nan"),
        "acc_test_retain_classmean": float(np.mean([accuracy(logits[test_r[y[test_r] == c]], y[test_r[y[test_r] == c]])
                                                    for c in np.unique(y[test_r])])) if len(test_r) else float("nan"),
    }
    nonfinite = int((~np.isfinite(logits).all(1)).sum())
    if nonfinite:
        m["nonfinite_outputs"] = nonfinite
    p = softmax(logits.astype(np.float64))
    shadow = Shadow.sample(p[retain], y[retain], p[test_r], y[test_r], seed=seed)
    # every attack's score with its own held-out balanced accuracy (cross-fitted on the shadow data)
    fractions = {}
    for name, ev in evaluate_attacks(shadow, p[forget], y[forget], seed=seed).items():
        key = metric_name(name)
        m[key], m[f"{key}_bacc"], m[f"{key}_bacc_low"] = ev["score"], ev["shadow_bacc"], ev["bacc_low"]
        fractions[name] = ev["member_frac"].astype(np.float32)  # per forget sample: share of folds calling it member
    hist = prediction_histogram(logits[forget], num_classes)
    if retrain_logits is not None:
        m["js_forget_pred"] = js_divergence(hist, prediction_histogram(retrain_logits[forget], num_classes))
    return m, {**fractions, "forget_pred_hist": hist}


def run_mia_thesis(outputs: str, data: str, split: str, request: str, out_json: str) -> None:
    """Rule mia_thesis: `mia.thesis_mia` on one run's saved logits (members: the whole retain set;
    non-members: every test sample, the forgotten classes' included; scored: the forget set)."""
    rd = RequestData.load(data, split, request)
    p = softmax(read_npz(outputs)["logits"].astype(np.float64))
    r = thesis_mia(p[rd.retain], rd.y[rd.retain], p[rd.test], rd.y[rd.test], p[rd.forget], rd.y[rd.forget])
    write_json(out_json, {"metrics": {"mia_thesis": r["score"]}, "fit_bacc": r["fit_bacc"], "n_members": r["n_members"],
                          "n_nonmembers": r["n_nonmembers"], "n_forget": r["n_forget"]})
