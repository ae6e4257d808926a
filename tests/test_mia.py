"""Membership-inference attacks judge themselves: with a real member/non-member gap they beat chance
on held-out shadow data, on an exchangeable split they are declared at chance; LiRA recovers a known
IN/OUT shift and gives AUC 1/2 without one."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from unlearnbench.metrics import lira
from unlearnbench.metrics.mia import ATTACKS, Shadow, all_attacks, chance_test, evaluate_attacks, wilson_interval


@pytest.fixture(scope="module")
def overfit():
    """An MLP memorising 400 digits with 20 % label noise (train 100 %, test ~55 %), and its
    probabilities on the train set (a), an unseen set (b) and another unseen set (c)."""
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier

    d = load_digits()
    x, y = d.data / 16.0, d.target.copy()
    rng = np.random.default_rng(0)
    noisy = rng.uniform(size=len(y)) < 0.2
    y[noisy] = (y[noisy] + rng.integers(1, 10, noisy.sum())) % 10
    perm = rng.permutation(len(y))
    a, b, c = perm[:400], perm[400:800], perm[800:1200]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier(hidden_layer_sizes=(128,), alpha=0.0, solver="lbfgs", max_iter=300,
                            random_state=0).fit(x[a], y[a])
    p = clf.predict_proba(x)
    assert (p[a].argmax(1) == y[a]).mean() == 1.0 and (p[b].argmax(1) == y[b]).mean() < 0.8
    return p, y, a, b, c


def test_wilson_and_chance_test():
    lo, hi = wilson_interval(50, 100)
    assert lo < 0.5 < hi and hi - lo == pytest.approx(0.192, abs=0.005)
    assert chance_test(50, 100)["at_chance"] and chance_test(58, 100)["at_chance"]  # 0.58 on 100: too few
    t = chance_test(600, 1000)
    assert not t["at_chance"] and t["bacc_low"] > 0.5 and t["p_value"] < 1e-9


def test_attacks_beat_chance_on_an_overfit_model(overfit):
    p, y, a, b, c = overfit
    shadow = Shadow.sample(p[a], y[a], p[b], y[b], seed=0)
    ev = evaluate_attacks(shadow, p[c], y[c], seed=0)
    assert set(ev) == set(ATTACKS)
    for name, r in ev.items():
        assert r["n_shadow_test"] == 800
        assert r["bacc_low"] > 0.5 and not r["at_chance"], (name, r["shadow_bacc"])
    for name in ("svc", "sm_correctness", "sm_confidence", "sm_mentropy"):  # the label-aware ones: strong
        assert ev[name]["shadow_bacc"] > 0.65, (name, ev[name]["shadow_bacc"])
    # Scores: unseen samples (c) are called member far less often than training samples are.
    on_train = evaluate_attacks(shadow, p[a], y[a], seed=0)
    for name in ("svc", "sm_confidence", "sm_mentropy"):
        assert on_train[name]["member_rate"] > ev[name]["member_rate"] + 30, name
    assert ev["svc"]["score"] == pytest.approx(100 - ev["svc"]["member_rate"])
    assert ev["sm_confidence"]["score"] == ev["sm_confidence"]["member_rate"]
    assert set(np.unique(ev["svc"]["member_frac"])) <= {0.0, 0.5, 1.0}


def test_attacks_at_chance_on_exchangeable_splits(overfit):
    """Exchangeable member/non-member splits: both unseen by the model, or membership relabelled at
    random among seen and unseen samples. Each decision is a test at about 2.5 % (one-sided), so over
    4 x 2 splits x 7 attacks = 56 decisions about 1.4 false "beats chance" are expected."""
    p, y, a, b, c = overfit
    unseen_pool = np.r_[b, c]
    decisions, baccs = [], []
    for s in range(4):
        rng = np.random.default_rng(100 + s)
        u = rng.permutation(unseen_pool)
        mix = rng.permutation(np.r_[a, b])
        for shadow in (Shadow(p[u[:400]], y[u[:400]], p[u[400:]], y[u[400:]]),
                       Shadow(p[mix[:400]], y[mix[:400]], p[mix[400:]], y[mix[400:]])):
            for name, r in evaluate_attacks(shadow, p[c], y[c], seed=s).items():
                decisions.append(r["at_chance"])
                baccs.append(r["shadow_bacc"])
    baccs = np.asarray(baccs)
    assert len(decisions) - sum(decisions) <= 4, baccs[~np.asarray(decisions)]
    assert abs(baccs.mean() - 0.5) < 0.01 and np.abs(baccs - 0.5).max() < 0.07


def test_all_attacks_keeps_its_keys_and_fits_on_all_shadow_data(overfit):
    p, y, a, b, c = overfit
    shadow = Shadow.sample(p[a], y[a], p[b], y[b], seed=0)
    flags = all_attacks(shadow, p[c], y[c])
    assert list(flags) == ["svc", "entropy_lr", "prob_lr", "sm_correctness", "sm_confidence", "sm_entropy", "sm_mentropy"]
    assert all(v.dtype == bool and v.shape == (len(c),) for v in flags.values())


# --------------------------------------------------------------------------- LiRA
def test_logit_confidence_is_stable():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, (50, 10))
    y = rng.integers(0, 10, 50)
    pr = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    py = pr[np.arange(50), y]
    np.testing.assert_allclose(lira.logit_confidence(z, y), np.log(py / (1 - py)), rtol=1e-9)
    big = np.zeros((1, 3))
    big[0, 0] = 60.0  # p_y = 1 in float64; phi must stay finite
    assert lira.logit_confidence(big, np.array([0]))[0] == pytest.approx(60 - np.log(2))
    assert lira.logit_confidence(np.stack([z, z]), y).shape == (2, 50)


def test_inclusion_masks_are_balanced():
    keep = lira.inclusion_masks(500, 8, seed=3)
    assert keep.shape == (8, 500) and (keep.sum(0) == 4).all()
    assert 0.45 < keep.mean(1).min() and keep.mean(1).max() < 0.55


def _synthetic(shift: float, k: int = 16, n: int = 1500, seed: int = 0):
    """phi = per-sample difficulty + model noise + shift if IN; as 2-class logits with label 1."""
    rng = np.random.default_rng(seed)
    keep = lira.inclusion_masks(n, k, seed)
    base = rng.normal(2, 2, n)
    phi = base[None] + rng.normal(0, 1, (k, n)) + shift * keep
    target_in = rng.uniform(size=n) < 0.5
    phi_t = base + rng.normal(0, 1, n) + shift * target_in
    to_logits = lambda f: np.stack([np.zeros_like(f), f], -1)
    return to_logits(phi), keep, np.ones(n, dtype=int), to_logits(phi_t), target_in


@pytest.mark.parametrize("online,variance", [(True, "global"), (True, "shared"), (True, "per_sample"), (False, "global")])
def test_lira_recovers_a_known_shift(online, variance):
    from scipy.stats import norm

    logits, keep, y, logits_t, target_in = _synthetic(shift=1.5)
    stats = lira.fit_lira(lira.logit_confidence(logits, y), keep, variance)
    s = lira.lira_scores(lira.logit_confidence(logits_t, y), stats, online=online)
    ideal = norm.cdf(1.5 / np.sqrt(2))  # AUC with the true per-sample means: 0.856
    slack = 0.10 if variance == "per_sample" else 0.06  # 8 IN / 8 OUT per sample: noisy variances
    assert ideal - slack < lira.auc(s[target_in], s[~target_in]) <= ideal + 0.02
    loo = lira.leave_one_out_scores(lira.logit_confidence(logits, y), keep, online=online, variance=variance)
    assert ideal - slack < lira.auc(loo[keep], loo[~keep]) <= ideal + 0.02


@pytest.mark.parametrize("k", [8, 16])
def test_lira_without_shift_is_at_chance(k):
    logits, keep, y, logits_t, target_in = _synthetic(shift=0.0, k=k, seed=1)
    rep = lira.lira_report(logits, keep, y, logits_t, forget=np.flatnonzero(target_in),
                           check_in=np.flatnonzero(target_in), check_out=np.flatnonzero(~target_in), fpr=0.05)
    assert abs(rep["lira_auc_shadow"] - 50) < 2.5 and abs(rep["lira_auc_target"] - 50) < 5
    assert abs(rep["lira_called_member"] - 5) < 3  # calibrated: members look like OUT, ~fpr called member
    assert abs(rep["lira_member_prob"] - 50) < 5
    assert rep["lira_at_chance"] and rep["lira_auc_target_low"] < 50 < rep["lira_auc_target_high"]


def test_lira_report_separates_remembered_from_forgotten():
    logits, keep, y, logits_t, target_in = _synthetic(shift=2.0)
    forget = np.flatnonzero(target_in)
    phi_t = logits_t[:, 1].copy()
    remembered = lira.lira_report(logits, keep, y, logits_t, forget, fpr=0.05,
                                  check_in=forget, check_out=np.flatnonzero(~target_in))
    assert not remembered["lira_at_chance"] and remembered["lira_auc_target_low"] > 80
    phi_t[forget] -= 2.0  # "unlearned" exactly to the OUT distribution (as a retrained model would)
    forgotten = lira.lira_report(logits, keep, y, np.stack([np.zeros_like(phi_t), phi_t], -1), forget, fpr=0.05)
    assert remembered["lira_auc_shadow"] > 85
    assert remembered["lira_called_member"] > 40 and remembered["lira_member_prob"] > 75
    assert forgotten["lira_called_member"] < 10 and forgotten["lira_member_prob"] < 30
    assert remembered["lira_offline_auc_shadow"] > 85 and remembered["lira_offline_called_member"] > 40


def test_lira_calls_a_never_seen_class_out():
    """After class forgetting phi falls far below both shadow distributions; members vary less than
    non-members (as on digits), and the default (one IN, one OUT variance) calls such samples OUT."""
    rng = np.random.default_rng(2)
    k, n = 16, 1000
    keep = lira.inclusion_masks(n, k, 2)
    base = rng.normal(2, 1, n)
    phi = base[None] + np.where(keep, 0.5 + rng.normal(0, 0.5, (k, n)), rng.normal(0, 1.0, (k, n)))
    to_logits = lambda f: np.stack([np.zeros_like(f), f], -1)
    y = np.ones(n, dtype=int)
    target = to_logits(np.full(n, -15.0))
    forget = np.arange(n)
    rep = lira.lira_report(to_logits(phi), keep, y, target, forget)
    assert rep["lira_auc_shadow"] > 70
    assert rep["lira_member_prob"] < 1 and rep["lira_called_member"] == 0 and rep["lira_offline_called_member"] == 0


def test_aggregate_scores_drops_seeds_at_chance():
    from unlearnbench.metrics.mia import AT_CHANCE_TEXT, aggregate_scores

    cell = aggregate_scores([100.0, 96.0, 0.0], [False, False, True])
    assert cell["informative"] and cell["mean"] == 98.0 and cell["n"] == 2 and "(2/3 seeds)" in cell["text"]
    assert aggregate_scores([100.0, 0.0, 0.0], [False, True, True])["text"] == AT_CHANCE_TEXT
    assert np.isnan(aggregate_scores([1.0, 2.0], [True, True])["mean"])
    assert aggregate_scores([10.0, 20.0, 30.0], [False] * 3)["text"] == "20.0 ± 10.0"


# --------------------------------------------------------------------------- the MuGAN thesis' MIA
def _probs_with_entropy(n: int, low: bool, k: int = 10, y: int = 0) -> np.ndarray:
    """n probability vectors: confident on class y (low entropy) or nearly uniform (high entropy)."""
    p = np.full((n, k), 0.002 if low else 0.1)
    p[:, y] = 1 - 0.002 * (k - 1) if low else 0.1
    if not low:
        p += np.linspace(-0.01, 0.01, n)[:, None] * (np.arange(k) - (k - 1) / 2) / k  # a spread of entropies
    return p / p.sum(1, keepdims=True)


def test_thesis_mia_fits_once_on_all_retain_vs_all_test_and_scores_the_forget_set(monkeypatch):
    """mia_thesis: one balanced entropy regression fitted on EVERY retain sample (member) against EVERY
    test sample (non-member: the forgotten class's test samples included; no subsampling to equal
    sizes, no cross-fitting); the score is the % of forget samples it calls member."""
    from unlearnbench.metrics import mia

    fits = []
    real = mia._fit_logreg
    monkeypatch.setattr(mia, "_fit_logreg", lambda x, m: fits.append((x.copy(), m.copy())) or real(x, m))
    p_retain = _probs_with_entropy(300, low=True, y=1)                       # members: confident
    p_test = np.r_[_probs_with_entropy(80, low=False, y=1), _probs_with_entropy(20, low=False, y=0)]  # incl. class 0
    y_test = np.r_[np.ones(80, int), np.zeros(20, int)]
    p_forget = np.r_[_probs_with_entropy(20, low=True), _probs_with_entropy(30, low=False)]  # 20 of 50 remembered
    r = mia.thesis_mia(p_retain, np.ones(300, int), p_test, y_test, p_forget, np.zeros(50, int))
    assert len(fits) == 1  # one fit
    x, m = fits[0]
    assert len(m) == 300 + 100 and (m[:300] == 1).all() and (m[300:] == 0).all()  # all of both, unequal sizes
    np.testing.assert_allclose(x[:, 0], np.r_[mia.entropy(p_retain), mia.entropy(p_test)])
    assert r["score"] == pytest.approx(40.0) and r["member_flags"].tolist() == [True] * 20 + [False] * 30
    assert r["fit_bacc"] == 1.0 and (r["n_members"], r["n_nonmembers"], r["n_forget"]) == (300, 100, 50)


def test_thesis_mia_stage_uses_the_whole_retain_and_test_sets(tmp_path, monkeypatch):
    """Rule mia_thesis (extras [mia_thesis]): members = the request's retain set, non-members = the whole
    test split (the forgotten class's test samples included), scored = the forget set; metric mia_thesis."""
    import json

    from helpers import stage_job
    from unlearnbench.io import write_npz
    from unlearnbench.metrics import accuracy
    from unlearnbench.pipeline import run_make_forget_request, run_make_split, run_prepare_dataset
    from unlearnbench.report.tables import LABELS

    spec = {"source": "digits", "image_size": 8, "channels": 1, "val_fraction": 0.1, "test_fraction": 0.2, "split_seed": 0}
    run_prepare_dataset(stage_job(data=tmp_path / "data.npz"), spec, "unused", False)
    run_make_split(stage_job(split=tmp_path / "split.json"), str(tmp_path / "data.npz"), spec)
    run_make_forget_request(stage_job(request=tmp_path / "req.json", card=tmp_path / "card.json"), str(tmp_path / "data.npz"),
                            str(tmp_path / "split.json"), {"type": "class", "classes": [3]})
    y = np.load(tmp_path / "data.npz")["y"]
    logits = np.random.default_rng(0).normal(0, 3, (len(y), 10)).astype(np.float32)
    write_npz(str(tmp_path / "outputs.npz"), logits=logits)
    seen = {}
    real = accuracy.thesis_mia
    monkeypatch.setattr(accuracy, "thesis_mia", lambda *a: seen.update(args=a) or real(*a))
    accuracy.run_mia_thesis(str(tmp_path / "outputs.npz"), str(tmp_path / "data.npz"), str(tmp_path / "split.json"),
                            str(tmp_path / "req.json"), str(tmp_path / "mia_thesis.json"))
    split, req = json.loads((tmp_path / "split.json").read_text()), json.loads((tmp_path / "req.json").read_text())
    _, y_retain, _, y_test, _, y_forget = seen["args"]
    assert len(y_retain) == len(req["retain"]) and 3 not in y_retain
    assert np.array_equal(y_test, y[split["test"]]) and (y_test == 3).any()
    assert len(y_forget) == len(req["forget"]) and (y_forget == 3).all()
    out = json.loads((tmp_path / "mia_thesis.json").read_text())
    assert set(out["metrics"]) == {"mia_thesis"} and 0 <= out["metrics"]["mia_thesis"] <= 100
    assert out["n_nonmembers"] == len(split["test"]) and "mia_thesis" in LABELS
