import math

import numpy as np
import pytest
import torch

from unlearnbench.metrics import mia
from unlearnbench.metrics.accuracy import accuracy, compute_metrics, js_divergence, prediction_histogram, softmax, weight_distance


def test_accuracy_and_histogram():
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.0, 0.0, 5.0], [1.0, 0.0, 0.0]])
    assert accuracy(logits, np.array([0, 1, 1, 0])) == 75.0
    assert math.isnan(accuracy(logits[:0], np.array([], int)))
    assert prediction_histogram(logits, 4).tolist() == [0.5, 0.25, 0.25, 0.0]


def test_js_divergence_known_values():
    assert js_divergence([1, 0], [1, 0]) == 0.0
    assert js_divergence([1, 0], [0, 1]) == pytest.approx(1.0)
    # p=(1/2,1/2), q=(1,0): m=(3/4,1/4); JS = 0.5*KL(p||m) + 0.5*KL(q||m)
    kl_p = 0.5 * math.log2(0.5 / 0.75) + 0.5 * math.log2(0.5 / 0.25)
    kl_q = math.log2(1 / 0.75)
    assert js_divergence([0.5, 0.5], [1, 0]) == pytest.approx(0.5 * kl_p + 0.5 * kl_q)


def test_modified_entropy_matches_song_mittal_formula():
    p = np.array([[0.7, 0.2, 0.1]])
    y = np.array([0])
    expected = -(1 - 0.7) * math.log(0.7) - 0.2 * math.log(1 - 0.2) - 0.1 * math.log(1 - 0.1)
    assert mia.modified_entropy(p, y)[0] == pytest.approx(expected)
    # a confident correct prediction has low modified entropy, a confident wrong one high
    assert mia.modified_entropy(np.array([[0.99, 0.01]]), np.array([0]))[0] < mia.modified_entropy(np.array([[0.01, 0.99]]), np.array([0]))[0]
    assert mia.entropy(np.array([[0.5, 0.5]]))[0] == pytest.approx(math.log(2))


def test_best_threshold_separates():
    t = mia.best_threshold(np.array([0.8, 0.9, 0.95]), np.array([0.1, 0.3, 0.5]))
    assert 0.5 < t <= 0.8


def _shadow(rng, n=200, k=3):
    """Members: confident and correct; non-members: diffuse."""
    y_in, y_out = rng.integers(0, k, n), rng.integers(0, k, n)
    p_in = np.full((n, k), 0.02 / (k - 1))
    p_in[np.arange(n), y_in] = 0.98
    p_out = rng.dirichlet(np.ones(k), n)
    return mia.Shadow(p_in, y_in, p_out, y_out)


def test_attacks_flag_confident_samples_as_members():
    rng = np.random.default_rng(0)
    sh = _shadow(rng)
    k, n = 3, 50
    y = rng.integers(0, k, n)
    confident = np.full((n, k), 0.01)
    confident[np.arange(n), y] = 0.98
    diffuse = np.full((n, k), 0.4)  # low confidence, and wrong
    diffuse[np.arange(n), y] = 0.2
    on_conf, on_diff = mia.all_attacks(sh, confident, y), mia.all_attacks(sh, diffuse, y)
    for name in on_conf:
        assert on_conf[name].mean() > 0.9, name
        assert on_diff[name].mean() < 0.1, name


def test_threshold_attack_pools_classes_missing_from_shadow():
    # class 2 has no shadow samples: it must use the pooled threshold, not crash or default to member
    s_in, y_in = np.array([0.9, 0.95, 0.8, 0.85]), np.array([0, 0, 1, 1])
    s_out, y_out = np.array([0.1, 0.2, 0.3, 0.2]), np.array([0, 0, 1, 1])
    flags = mia.threshold_attack(s_in, y_in, s_out, y_out, np.array([0.05, 0.99]), np.array([2, 2]))
    assert flags.tolist() == [False, True]


def test_compute_metrics_on_a_class_forgetting_case():
    rng = np.random.default_rng(1)
    n, k = 300, 3
    y = np.repeat(np.arange(k), n // k)
    split = {"train": np.arange(0, 200), "val": np.array([], int), "test": np.arange(200, 300)}
    y[:200] = np.tile(np.arange(k), 67)[:200]
    y[200:] = np.tile(np.arange(k), 34)[:100]
    forget = np.flatnonzero(y[:200] == 0)
    retain = np.flatnonzero(y[:200] != 0)
    request = {"forget": forget, "retain": retain, "forget_classes": [0], "type": "class"}
    logits = np.eye(k)[y] * 8 + rng.normal(0, 0.1, (n, k))  # perfect model
    retrain = logits.copy()
    retrain[:, 0] = -8  # never predicts the forgotten class
    m, flags = compute_metrics(logits, y, split, request, k, retrain_logits=retrain)
    assert m["acc_forget"] == 100 and m["acc_retain"] == 100 and m["acc_test_retain"] == 100
    assert m["acc_test_forget"] == 100
    m_r, _ = compute_metrics(retrain, y, split, request, k, retrain_logits=retrain)
    assert m_r["acc_forget"] == 0 and m_r["acc_test_forget"] == 0 and m_r["js_forget_pred"] == 0
    assert m["js_forget_pred"] == pytest.approx(1.0)  # all-class-0 vs never-class-0 predictions
    assert m_r["mia_sm_correctness"] == 0 and m["mia_sm_correctness"] == 100
    assert set(flags) >= {"svc", "entropy_lr", "prob_lr", "sm_confidence", "sm_entropy", "sm_mentropy", "forget_pred_hist"}


def test_a_destroyed_model_gets_metrics_not_a_crash():
    """Logits with NaN or inf (an influence step too large, seen on a tuning cell): the sample has no
    prediction (wrong in every accuracy, out of the histogram), the attacks see uniform probabilities,
    and metrics.json counts the samples; a finite model's metrics carry no such key."""
    logits = np.array([[2.0, 1.0, 0.0], [np.nan, 3.0, 1.0], [0.0, np.inf, 5.0], [1.0, 0.0, 0.0]])
    assert accuracy(logits, np.array([0, 1, 2, 0])) == 50.0  # rows 1 and 2 would be right, but have no prediction
    assert prediction_histogram(logits, 3).tolist() == [1.0, 0.0, 0.0]
    assert np.allclose(softmax(logits)[1:3], 1 / 3) and np.isfinite(softmax(logits)).all()
    rng = np.random.default_rng(0)
    y = np.tile(np.arange(3), 100)
    split = {"train": np.arange(200), "val": np.array([], int), "test": np.arange(200, 300)}
    request = {"forget": np.flatnonzero(y[:200] == 0), "retain": np.flatnonzero(y[:200] != 0), "forget_classes": [0]}
    good = np.eye(3)[y] * 8 + rng.normal(0, 0.1, (300, 3))
    broken = good.copy()
    broken[::2] = np.nan
    m, _ = compute_metrics(broken, y, split, request, 3)
    assert m["nonfinite_outputs"] == 150 and m["acc_retain"] == pytest.approx(50, abs=2)
    assert all(math.isfinite(v) for k, v in m.items() if k.startswith("mia_"))
    assert "nonfinite_outputs" not in compute_metrics(good, y, split, request, 3)[0]


def test_weight_distance_and_sparsity():
    a = {"w": np.array([3.0, 0.0], np.float32), "b": np.array([0.0]), "running_mean": np.array([5.0])}
    b = {"w": np.array([0.0, 0.0], np.float32), "b": np.array([4.0]), "running_mean": np.array([0.0])}
    d = weight_distance(a, b, ["w", "b"])  # buffers (running_mean) are not parameters
    assert d["layers"] == {"w": 3.0, "b": 4.0} and d["total"] == pytest.approx(5.0)
    from unlearnbench.metrics.accuracy import conv_sparsity

    conv = np.ones((4, 2, 3, 3), np.float32)
    conv[:3] = 0
    assert conv_sparsity({"conv.weight": conv, "head.weight": np.zeros((2, 2))}) == 0.75  # only 4-D weights count


def test_softmax_rows_sum_to_one():
    p = softmax(np.array([[1000.0, 0.0], [0.0, 0.0]]))
    assert np.allclose(p.sum(1), 1) and p[0, 0] == pytest.approx(1.0)
