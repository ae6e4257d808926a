"""Membership-inference attacks used by the five papers.

Every attack is fitted on shadow data with known membership:
  members     = retained training samples (a seeded subsample, as many as there are non-members),
  non-members = held-out test samples (of the retained classes under class forgetting),
and applied to the forget set. Each returns per-sample "member" decisions for the forget set;
scores in tables are percentages of the forget set.

Inputs are softmax probabilities `p` [N, K] and labels `y` [N].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EPS = 1e-30


# --------------------------------------------------------------------------- features
def confidence(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Probability of the true class, F(x)_y."""
    return p[np.arange(len(y)), y]


def entropy(p: np.ndarray) -> np.ndarray:
    return -(p * np.log(np.clip(p, EPS, None))).sum(1)


def modified_entropy(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Song & Mittal (2021) Eq. 6: -(1-p_y) log p_y - sum_{i!=y} p_i log(1-p_i).

    (The SalUn reference uses log p_i for the second term; this is the paper's formula.)
    """
    py = confidence(p, y)
    term_y = -(1 - py) * np.log(np.clip(py, EPS, None))
    others = -p * np.log(np.clip(1 - p, EPS, None))
    others[np.arange(len(y)), y] = 0.0
    return term_y + others.sum(1)


@dataclass
class Shadow:
    """Shadow data: probabilities and labels of known members and known non-members."""
    p_in: np.ndarray
    y_in: np.ndarray
    p_out: np.ndarray
    y_out: np.ndarray

    @staticmethod
    def sample(p_retain, y_retain, p_test, y_test, seed: int = 0) -> "Shadow":
        n = min(len(y_retain), len(y_test))
        rng = np.random.default_rng(seed)
        i = np.sort(rng.choice(len(y_retain), size=n, replace=False))
        j = np.sort(rng.choice(len(y_test), size=n, replace=False))
        return Shadow(p_retain[i], y_retain[i], p_test[j], y_test[j])


# --------------------------------------------------------------------------- classifier attacks
def svc_confidence_attack(shadow: Shadow, p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """SalUn's MIA: SVC(C=3, rbf, gamma='auto') on the true-class confidence. Returns member flags."""
    from sklearn.svm import SVC

    x_tr = np.concatenate([confidence(shadow.p_in, shadow.y_in), confidence(shadow.p_out, shadow.y_out)])[:, None]
    m_tr = np.r_[np.ones(len(shadow.y_in)), np.zeros(len(shadow.y_out))]
    clf = SVC(C=3, gamma="auto", kernel="rbf").fit(x_tr, m_tr)
    return clf.predict(confidence(p, y)[:, None]).astype(bool)


def _logreg(x_tr: np.ndarray, m_tr: np.ndarray, x: np.ndarray) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(class_weight="balanced", max_iter=1000).fit(x_tr, m_tr)
    return clf.predict(x).astype(bool)


def entropy_logreg_attack(shadow: Shadow, p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """MuGAN / Bad Teacher: balanced logistic regression on the output entropy."""
    x_tr = np.concatenate([entropy(shadow.p_in), entropy(shadow.p_out)])[:, None]
    m_tr = np.r_[np.ones(len(shadow.y_in)), np.zeros(len(shadow.y_out))]
    return _logreg(x_tr, m_tr, entropy(p)[:, None])


def prob_logreg_attack(shadow: Shadow, p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """UISPS: balanced logistic regression on the predicted probability vector.

    The vector is sorted in descending order (as in ML-Leaks, Salem et al. 2019): a linear model on
    the raw vector cannot express "the top probability is high" and sees only which class won.
    """
    def feats(q):
        return -np.sort(-q, axis=1)

    x_tr = np.concatenate([feats(shadow.p_in), feats(shadow.p_out)])
    m_tr = np.r_[np.ones(len(shadow.y_in)), np.zeros(len(shadow.y_out))]
    return _logreg(x_tr, m_tr, feats(p))


# --------------------------------------------------------------------------- Song & Mittal threshold attacks
def best_threshold(s_in: np.ndarray, s_out: np.ndarray) -> float:
    """Threshold t maximising balanced accuracy of 'member iff score >= t'."""
    cand = np.unique(np.concatenate([s_in, s_out]))
    if len(cand) == 0:
        return np.inf
    s_in, s_out = np.sort(s_in), np.sort(s_out)
    tpr = 1 - np.searchsorted(s_in, cand, side="left") / max(len(s_in), 1)
    tnr = np.searchsorted(s_out, cand, side="left") / max(len(s_out), 1)
    if len(s_in) == 0:
        tpr = np.full_like(tnr, 0.5)
    if len(s_out) == 0:
        tnr = np.full_like(tpr, 0.5)
    return float(cand[np.argmax(tpr + tnr)])


def threshold_attack(score_in, y_in, score_out, y_out, score, y) -> np.ndarray:
    """Per-class thresholds on shadow scores (higher = more member-like).

    Rule for classes with no shadow samples (e.g. the forgotten class, absent from the retain set):
    use the threshold fitted on all classes pooled.
    """
    pooled = best_threshold(score_in, score_out)
    flags = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        a, b = score_in[y_in == c], score_out[y_out == c]
        t = best_threshold(a, b) if (len(a) and len(b)) else pooled
        flags[y == c] = score[y == c] >= t
    return flags


def song_mittal_attacks(shadow: Shadow, p: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Correctness, confidence, entropy and modified-entropy attacks; member flags per sample."""
    out = {"correctness": p.argmax(1) == y}
    feats = {
        "confidence": lambda q, t: confidence(q, t),
        "entropy": lambda q, t: -entropy(q),
        "mentropy": lambda q, t: -modified_entropy(q, t),
    }
    for name, f in feats.items():
        out[name] = threshold_attack(f(shadow.p_in, shadow.y_in), shadow.y_in,
                                     f(shadow.p_out, shadow.y_out), shadow.y_out, f(p, y), y)
    return out


def all_attacks(shadow: Shadow, p_forget: np.ndarray, y_forget: np.ndarray) -> dict[str, np.ndarray]:
    """Every attack's member flags on the forget set, keyed by metric name."""
    flags = {
        "svc": svc_confidence_attack(shadow, p_forget, y_forget),
        "entropy_lr": entropy_logreg_attack(shadow, p_forget, y_forget),
        "prob_lr": prob_logreg_attack(shadow, p_forget, y_forget),
    }
    flags.update({f"sm_{k}": v for k, v in song_mittal_attacks(shadow, p_forget, y_forget).items()})
    return flags
