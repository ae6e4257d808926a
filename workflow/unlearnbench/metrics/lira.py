"""Likelihood-ratio membership inference with shadow models (LiRA; Carlini et al. 2022, "Membership
Inference Attacks From First Principles"), as a per-example metric for unlearning.

Setup. K shadow models are trained with the target's recipe, each on a random half of a pool of
samples (`inclusion_masks`: every pool sample is IN for exactly K/2 of them). For each sample n
the attack looks at the logit-scaled confidence phi = log(p_y / (1 - p_y)) (`logit_confidence`)
that the IN and the OUT shadow models give it and fits one Gaussian to each (`fit_lira`). A target
model's phi on n is then scored by
  online:  log N(phi; mu_in, sd_in) - log N(phi; mu_out, sd_out)   (a log likelihood ratio), or
  offline: log Pr[Z <= phi], Z ~ N(mu_out, sd_out)                 (needs OUT models only);
higher = more member-like (`lira_scores`). Centres are per-sample medians (as in the authors'
code). Variances (`variance`):
  "global"      one pooled IN and one pooled OUT variance (default, choice: the paper's "fixed
                variance" for K < 64). Members usually vary less than non-members (sd_in < sd_out;
                on digits a third as much), which is much of the signal, and then a phi far
                outside both distributions (a model that never saw the sample's class) is called OUT;
  "shared"      one variance for both (the authors' code's fixed variance). The LLR is linear in phi
                and its slope's sign is that of mu_in - mu_out, which is noise where the two centres
                nearly coincide: far-out phis then get arbitrary, extreme verdicts;
  "per_sample"  per-sample variances (the paper's online attack with many shadow models; noisy
                with K < 64, and wherever sd_in > sd_out a phi far in either tail is called IN).
The offline score is monotone in phi and needs none of this; `lira_report` gives both.

For unlearning the target is the unlearned model and the samples of interest are the forget set:
an unlearned model that forgot them makes them look OUT, as the retrained model does. `lira_report`
gives the numbers a table shows (percentages):
  lira_member_prob   mean over the forget set of P(member | phi) = sigmoid(online LLR) (equal prior)
  lira_called_member % of the forget set whose score exceeds the threshold that calls `fpr` of the
                     OUT samples of held-out shadow models member (leave-one-shadow-out calibration)
  lira_auc_shadow    the attack's own signal check: AUC of IN vs OUT over held-out shadow models
                     (leave-one-out; 50 = no signal)
  lira_auc_target    AUC on the target's own known members vs non-members (`check_in`/`check_out`,
                     e.g. the retain set vs test samples of retained classes), when given, with a
                     Hanley-McNeil 95 % interval (`_low`, `_high`) and `lira_at_chance` (lower
                     bound <= 50: the same decision rule as mia.evaluate_attacks)
Under class forgetting the OUT shadow models have still seen the rest of the class, so the
retrained model (which never saw the class) sits far below the OUT distribution: the offline score
and the default online score (with sd_in < sd_out) call it OUT with room to spare, and the test
says little beyond the forget accuracy; it is sharpest for random forgetting.

U-LiRA (Hayes et al. 2024, "Inexact unlearning needs more careful evaluations") is the same
computation with different shadow models: each shadow model is trained on a half of the pool and
then unlearns a random subset of its training samples with the method under test; "IN" are the
unlearned samples and "OUT" the samples the shadow model never saw (retrained-like). Pass those
phis and that mask to `fit_lira` and the scores measure whether a method's unlearned samples can be
told from never-seen ones. (It costs one unlearning run per shadow model.)

Everything here is numpy on logits and boolean masks; training the shadow models is the workflow's job.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.special import log_ndtr
from scipy.stats import norm, rankdata

from ..data import RequestData, check_split, read_archive, to_float
from ..errors import UserError
from ..io import read_json, read_npz, write_json, write_npz
from ..models.checkpoint import new_model
from ..runtime import Job, predict_logits
from ..training import train


# --------------------------------------------------------------------------- features and masks
def logit_confidence(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    """phi = log p_y - log(1 - p_y) from logits [..., N, C] and labels [N], computed stably as
    z_y - logsumexp_{j != y} z_j (no saturation at p_y -> 1)."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(y)
    zy = np.take_along_axis(z, np.broadcast_to(y[:, None], z.shape[:-1] + (1,)), axis=-1)[..., 0]
    others = z.copy()
    np.put_along_axis(others, np.broadcast_to(y[:, None], z.shape[:-1] + (1,)), -np.inf, axis=-1)
    m = others.max(-1, keepdims=True)
    lse = m[..., 0] + np.log(np.exp(others - m).sum(-1))
    return zy - lse


def inclusion_masks(n: int, k: int, seed: int = 0) -> np.ndarray:
    """bool [k, n]: which pool samples each of k shadow models trains on. Every sample is IN for
    exactly k // 2 models (the authors' construction: rank k uniform draws per sample)."""
    if k < 2:
        raise ValueError("LiRA needs at least 2 shadow models")
    rng = np.random.default_rng(seed)
    order = rng.uniform(size=(k, n)).argsort(0)
    return order < k // 2


# --------------------------------------------------------------------------- fitting and scoring
@dataclass
class LiraStats:
    """Per-sample Gaussian parameters of phi under IN and OUT shadow models (NaN where a sample has
    no IN or no OUT model)."""
    mu_in: np.ndarray
    sd_in: np.ndarray
    mu_out: np.ndarray
    sd_out: np.ndarray


def _masked_median(phi: np.ndarray, mask: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmedian(np.where(mask, phi, np.nan), axis=0)


VARIANCES = ("shared", "global", "per_sample")


def _sums(phi: np.ndarray, mask: np.ndarray, mu: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per sample: sum of squared residuals, count, degrees of freedom (one centre estimated)."""
    sq = np.where(mask, (phi - np.where(np.isfinite(mu), mu, 0.0)[None]) ** 2, 0.0).sum(0)
    cnt = mask.sum(0)
    return sq, cnt, np.maximum(cnt - 1, 0)


def fit_lira(phi: np.ndarray, keep: np.ndarray, variance: str = "global", min_sd: float = 1e-3,
             use: np.ndarray | None = None) -> LiraStats:
    """Gaussians of phi [K, N] under IN (keep True) and OUT (keep False) shadow models, per sample.
    `variance`: see the module docstring. `use` [K, N] (optional) excludes entries from the fit."""
    if variance not in VARIANCES:
        raise ValueError(f"variance must be one of {VARIANCES}, got {variance!r}")
    phi, keep = np.asarray(phi, np.float64), np.asarray(keep, bool)
    if phi.shape != keep.shape:
        raise ValueError(f"phi {phi.shape} and keep {keep.shape} must have the same shape [K, N]")
    use = np.ones_like(keep) if use is None else np.asarray(use, bool)
    m_in, m_out = keep & use, ~keep & use
    mu_in, mu_out = _masked_median(phi, m_in), _masked_median(phi, m_out)
    (sq_i, n_i, d_i), (sq_o, n_o, d_o) = _sums(phi, m_in, mu_in), _sums(phi, m_out, mu_out)
    if variance == "per_sample":
        sd_in, sd_out = np.sqrt(sq_i / np.maximum(d_i, 1)), np.sqrt(sq_o / np.maximum(d_o, 1))
    elif variance == "global":
        sd_in = np.full(len(mu_in), np.sqrt(sq_i.sum() / max(d_i.sum(), 1)))
        sd_out = np.full(len(mu_in), np.sqrt(sq_o.sum() / max(d_o.sum(), 1)))
    else:
        sd_in = sd_out = np.full(len(mu_in), np.sqrt((sq_i.sum() + sq_o.sum()) / max(d_i.sum() + d_o.sum(), 1)))
    sd_in, sd_out = np.maximum(sd_in, min_sd), np.maximum(sd_out, min_sd)
    sd_in[n_i == 0], sd_out[n_o == 0] = np.nan, np.nan
    return LiraStats(mu_in, sd_in, mu_out, sd_out)


def _balanced_use(keep: np.ndarray) -> np.ndarray:
    """Per sample, as many IN as OUT entries (the first ones of each group): unequal group sizes
    bias a held-out model's score towards the group it was in (its centre is estimated worse)."""
    k_in = np.cumsum(keep, 0)
    k_out = np.cumsum(~keep, 0)
    n = np.minimum(keep.sum(0), (~keep).sum(0))
    return np.where(keep, k_in <= n, k_out <= n)


def _log_normal(x, mu, sd):
    return -0.5 * ((x - mu) / sd) ** 2 - np.log(sd) - 0.5 * np.log(2 * np.pi)


def lira_scores(phi: np.ndarray, stats: LiraStats, online: bool = True) -> np.ndarray:
    """Membership score of target phi [..., N] (higher = more member-like); NaN where undefined."""
    phi = np.asarray(phi, np.float64)
    if online:
        return _log_normal(phi, stats.mu_in, stats.sd_in) - _log_normal(phi, stats.mu_out, stats.sd_out)

    return log_ndtr((phi - stats.mu_out) / stats.sd_out)


def member_probability(llr: np.ndarray) -> np.ndarray:
    """P(member | phi) from the online log likelihood ratio with prior 1/2."""
    return 0.5 * (1 + np.tanh(0.5 * np.asarray(llr, np.float64)))


def leave_one_out_scores(phi: np.ndarray, keep: np.ndarray, online: bool = True, variance: str = "global") -> np.ndarray:
    """scores [K, N]: shadow model k's phi scored with Gaussians fitted on the other K - 1 models
    (per sample balanced to equal IN and OUT counts, like the full fit that scores a target)."""
    phi, keep = np.asarray(phi, np.float64), np.asarray(keep, bool)
    out = np.empty_like(phi)
    for k in range(len(phi)):
        rest = np.arange(len(phi)) != k
        stats = fit_lira(phi[rest], keep[rest], variance, use=_balanced_use(keep[rest]))
        out[k] = lira_scores(phi[k], stats, online)
    return out


# --------------------------------------------------------------------------- summaries
def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Area under the ROC curve of "pos scores higher than neg" (ties count 1/2); NaNs dropped."""

    pos, neg = np.asarray(pos, float).ravel(), np.asarray(neg, float).ravel()
    pos, neg = pos[np.isfinite(pos)], neg[np.isfinite(neg)]
    if not len(pos) or not len(neg):
        return float("nan")
    r = rankdata(np.r_[pos, neg])
    return float((r[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def auc_interval(a: float, n_pos: int, n_neg: int, alpha: float = 0.05) -> tuple[float, float]:
    """Normal interval for an AUC `a` (0..1) from n_pos positives and n_neg negatives, with the
    Hanley & McNeil (1982) standard error."""

    if not (n_pos and n_neg) or not np.isfinite(a):
        return float("nan"), float("nan")
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / (n_pos * n_neg)
    z = float(norm.ppf(1 - alpha / 2)) * np.sqrt(max(var, 0.0))
    return float(max(a - z, 0.0)), float(min(a + z, 1.0))


def threshold_at_fpr(neg_scores: np.ndarray, fpr: float) -> float:
    """Threshold t with (share of finite neg scores >= t) <= fpr, the smallest such (ties aside)."""
    s = np.sort(np.asarray(neg_scores, float).ravel())
    s = s[np.isfinite(s)]
    if not len(s):
        return float("nan")
    i = int(np.ceil((1 - fpr) * len(s)))
    return float(np.nextafter(s[-1], np.inf)) if i >= len(s) else float(s[i])


def tpr_at_fpr(pos: np.ndarray, neg: np.ndarray, fpr: float) -> float:
    t = threshold_at_fpr(neg, fpr)
    pos = np.asarray(pos, float).ravel()
    pos = pos[np.isfinite(pos)]
    return float((pos >= t).mean()) if len(pos) else float("nan")


def lira_report(shadow_logits: np.ndarray, keep: np.ndarray, y: np.ndarray, target_logits: np.ndarray,
                forget: np.ndarray, check_in: np.ndarray | None = None, check_out: np.ndarray | None = None,
                fpr: float = 0.01, variance: str = "global") -> dict[str, Any]:
    """LiRA metrics of one target model (see module docstring), percentages.

    shadow_logits [K, N, C] and keep [K, N] over the pooled samples (a sample outside the shadow
    pool has keep False for every model and gets no score); target_logits [N, C]; forget, check_in,
    check_out: index arrays into the N samples. Keys without a prefix are the online attack's;
    `lira_offline_*` are the one-sided offline attack's (monotone in phi: robust where the target's
    phi lies far outside both shadow distributions, as after class forgetting).
    """
    keep = np.asarray(keep, bool)
    y = np.asarray(y)
    phi_sh = logit_confidence(shadow_logits, y)
    phi_t = logit_confidence(target_logits, y)
    stats = fit_lira(phi_sh, keep, variance)
    in_pool = keep.any(0) & (~keep).any(0)
    forget = np.asarray(forget)
    rep: dict[str, Any] = {"fpr": fpr, "variance": variance, "n_shadow": int(len(keep))}
    for prefix, online in (("lira", True), ("lira_offline", False)):
        loo = leave_one_out_scores(phi_sh, keep, online=online, variance=variance)
        shadow_in, shadow_out = loo[:, in_pool][keep[:, in_pool]], loo[:, in_pool][~keep[:, in_pool]]
        t = threshold_at_fpr(shadow_out, fpr)
        s = lira_scores(phi_t, stats, online=online)
        sf = s[forget]
        ok = np.isfinite(sf)
        if online:
            rep["lira_member_prob"] = float(member_probability(sf[ok]).mean() * 100) if ok.any() else float("nan")
            rep["n_forget_scored"] = int(ok.sum())
        rep[f"{prefix}_called_member"] = float((sf[ok] >= t).mean() * 100) if ok.any() else float("nan")
        rep[f"{prefix}_auc_shadow"] = auc(shadow_in, shadow_out) * 100
        rep[f"{prefix}_tpr_shadow"] = tpr_at_fpr(shadow_in, shadow_out, fpr) * 100
        rep[f"{prefix}_threshold"] = t
        if check_in is not None and check_out is not None:
            s_in, s_out = s[np.asarray(check_in)], s[np.asarray(check_out)]
            a = auc(s_in, s_out)
            lo, hi = auc_interval(a, int(np.isfinite(s_in).sum()), int(np.isfinite(s_out).sum()))
            rep[f"{prefix}_auc_target"] = a * 100
            rep[f"{prefix}_auc_target_low"], rep[f"{prefix}_auc_target_high"] = lo * 100, hi * 100
            rep[f"{prefix}_at_chance"] = bool(not lo > 0.5)  # the same decision rule as mia.chance_test
            rep[f"{prefix}_tpr_target"] = tpr_at_fpr(s_in, s_out, fpr) * 100
    return rep


# --------------------------------------------------------------------------- pipeline stages
def shadow_pool(split: dict, seed: int) -> np.ndarray:
    """The shadow pool: the training split plus a seeded subset of the test split of the same size
    (so that every pool sample is a member of half the shadow models and a non-member of the rest)."""
    train, test = np.asarray(split["train"]), np.asarray(split["test"])
    extra = np.random.default_rng(seed).permutation(test)[: len(train)]
    return np.sort(np.concatenate([train, extra]))


def run_lira_masks(data: str, split: str, settings: dict, out_masks: str) -> None:
    """Rule lira_masks: the pool and which of its samples each shadow model trains on."""

    d, s = read_archive(data), read_json(split)
    check_split(s, len(d["y"]), split)
    pool = shadow_pool(s, int(settings["seed"]))
    keep = np.zeros((int(settings["shadows"]), len(d["y"])), bool)
    keep[:, pool] = inclusion_masks(len(pool), int(settings["shadows"]), int(settings["seed"]))
    write_npz(out_masks, keep=keep, pool=pool)
    print(f"LiRA: {len(pool)} pool samples, {keep.shape[0]} shadow models, each on {keep[0].sum()} of them")


def run_lira_shadow(job: Job, data: str, masks: str, index: int, model_spec: dict, recipe: dict) -> None:
    """Rule lira_shadow: shadow model `index` trained with the target's recipe on its half of the
    pool (seed 1000 + index); its logits on every sample."""

    seed = 1000 + int(index)
    dev = job.start(seed)
    d, keep = read_archive(data), read_npz(masks)["keep"]
    if not 0 <= index < len(keep):
        raise UserError(f"{masks} has {len(keep)} shadow models, not {index + 1}; delete it and rerun")
    x, y = to_float(d["x"]), torch.from_numpy(d["y"])
    idx = torch.as_tensor(np.flatnonzero(keep[index]))
    model = new_model(d, model_spec)
    with job.timed():
        train(model, x[idx], y[idx], recipe, seed, dev, desc=f"shadow {index}")
    write_npz(job.out["outputs"], logits=predict_logits(model, x, dev).numpy().astype(np.float32))


def run_lira_metrics(outputs: str, shadows: list[str], masks: str, data: str, split: str, request: str,
                     settings: dict, out_json: str) -> None:
    """Rule lira: LiRA on one run's model, as metrics: `mia_lira` = % of the forget set called member
    at the FPR-calibrated threshold, `mia_lira_prob` = mean member probability, and the attack's own
    signal check (AUC of the model's retain samples vs test samples of retained classes) as
    `mia_lira_bacc` / `mia_lira_bacc_low` (AUC / 100 and its lower bound; <= 0.5: at chance)."""

    rd = RequestData.load(data, split, request)
    keep = read_npz(masks)["keep"]
    if len(shadows) != len(keep):
        raise UserError(f"LiRA got {len(shadows)} shadow models for {len(keep)} masks; rerun rule lira_masks")
    shadow_logits = np.stack([read_npz(p)["logits"] for p in shadows])
    rep = lira_report(shadow_logits, keep, rd.y, read_npz(outputs)["logits"], rd.forget, check_in=rd.retain,
                      check_out=rd.test_retain, fpr=float(settings["fpr"]), variance=settings["variance"])
    m = {"mia_lira": rep["lira_called_member"], "mia_lira_prob": rep["lira_member_prob"],
         "mia_lira_bacc": rep["lira_auc_target"] / 100, "mia_lira_bacc_low": rep["lira_auc_target_low"] / 100,
         "lira_auc_shadow": rep["lira_auc_shadow"], "lira_offline": rep["lira_offline_called_member"]}
    write_json(out_json, {"metrics": m, "report": rep})
