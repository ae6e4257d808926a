"""Membership-inference attacks used by the five papers.

Every attack is fitted on shadow data with known membership:
  members     = retained training samples (a seeded subsample, as many as there are non-members),
  non-members = held-out test samples (of the retained classes under class forgetting),
and applied to the forget set. Each returns per-sample "member" decisions for the forget set;
scores in tables are percentages of the forget set.

Inputs are softmax probabilities `p` [N, K] and labels `y` [N].

One exception, `mia_thesis` (`thesis_mia`, rule mia_thesis, extras [mia_thesis]): the MuGAN thesis'
MIA exactly as its code computes it, with no subsampling and no self-evaluation (see there).

Self-evaluation (`evaluate_attacks`): an attack whose own balanced accuracy on held-out shadow data
is at chance says nothing about the forget set (its verdict there is an arbitrary extrapolation).
Each attack is cross-fitted on two halves of the shadow data; its pooled held-out balanced accuracy
gets a Wilson interval and an exact binomial p-value, and "at chance" is the decision
"the interval's lower bound is <= 0.5".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from scipy.stats import binomtest, norm
from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC

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

    def take(self, i_in: np.ndarray, i_out: np.ndarray) -> "Shadow":
        return Shadow(self.p_in[i_in], self.y_in[i_in], self.p_out[i_out], self.y_out[i_out])

    def folds(self, k: int = 2, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
        """k disjoint (member index, non-member index) folds of equal size (balanced; leftovers dropped)."""
        n = min(len(self.y_in), len(self.y_out)) // k * k
        rng = np.random.default_rng([seed, 1])  # a stream apart from `sample`'s
        a, b = rng.permutation(len(self.y_in))[:n], rng.permutation(len(self.y_out))[:n]
        return [(np.sort(a[f::k]), np.sort(b[f::k])) for f in range(k)]


# --------------------------------------------------------------------------- classifier attacks
# A fitted attack is a function (p, y) -> member flags; fit_* functions build one from shadow data.
Predictor = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _membership(shadow: Shadow) -> np.ndarray:
    return np.r_[np.ones(len(shadow.y_in)), np.zeros(len(shadow.y_out))]


def fit_svc(shadow: Shadow) -> Predictor:
    """SalUn's MIA: SVC(C=3, rbf, gamma='auto') on the true-class confidence."""

    x_tr = np.concatenate([confidence(shadow.p_in, shadow.y_in), confidence(shadow.p_out, shadow.y_out)])[:, None]
    clf = SVC(C=3, gamma="auto", kernel="rbf").fit(x_tr, _membership(shadow))
    return lambda p, y: clf.predict(confidence(p, y)[:, None]).astype(bool)




def _fit_logreg(x_tr: np.ndarray, m_tr: np.ndarray):

    return LogisticRegression(class_weight="balanced", max_iter=1000).fit(x_tr, m_tr)


def fit_entropy_lr(shadow: Shadow) -> Predictor:
    """MuGAN / Bad Teacher: balanced logistic regression on the output entropy."""
    x_tr = np.concatenate([entropy(shadow.p_in), entropy(shadow.p_out)])[:, None]
    clf = _fit_logreg(x_tr, _membership(shadow))
    return lambda p, y: clf.predict(entropy(p)[:, None]).astype(bool)




def _sorted_probs(q: np.ndarray) -> np.ndarray:
    return -np.sort(-q, axis=1)


def fit_prob_lr(shadow: Shadow) -> Predictor:
    """UISPS: balanced logistic regression on the predicted probability vector.

    The vector is sorted in descending order (as in ML-Leaks, Salem et al. 2019): a linear model on
    the raw vector cannot express "the top probability is high" and sees only which class won.
    """
    x_tr = np.concatenate([_sorted_probs(shadow.p_in), _sorted_probs(shadow.p_out)])
    clf = _fit_logreg(x_tr, _membership(shadow))
    return lambda p, y: clf.predict(_sorted_probs(p)).astype(bool)




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


def fit_thresholds(score_in, y_in, score_out, y_out) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Per-class thresholds on shadow scores (higher = more member-like); returns (score, y) -> flags.

    Rule for classes with no shadow samples (e.g. the forgotten class, absent from the retain set):
    use the threshold fitted on all classes pooled.
    """
    pooled = best_threshold(score_in, score_out)
    per_class = {int(c): best_threshold(score_in[y_in == c], score_out[y_out == c])
                 for c in np.intersect1d(y_in, y_out)}

    def predict(score, y):
        flags = np.zeros(len(y), dtype=bool)
        for c in np.unique(y):
            flags[y == c] = score[y == c] >= per_class.get(int(c), pooled)
        return flags

    return predict


def threshold_attack(score_in, y_in, score_out, y_out, score, y) -> np.ndarray:
    return fit_thresholds(score_in, y_in, score_out, y_out)(score, y)


# Song & Mittal (2021) features, higher = more member-like.
SM_FEATURES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "confidence": lambda q, t: confidence(q, t),
    "entropy": lambda q, t: -entropy(q),
    "mentropy": lambda q, t: -modified_entropy(q, t),
}


def fit_sm(shadow: Shadow, name: str) -> Predictor:
    """One Song & Mittal attack: `correctness` (no parameters) or a per-class threshold on a feature."""
    if name == "correctness":
        return lambda p, y: p.argmax(1) == y
    f = SM_FEATURES[name]
    rule = fit_thresholds(f(shadow.p_in, shadow.y_in), shadow.y_in, f(shadow.p_out, shadow.y_out), shadow.y_out)
    return lambda p, y: rule(f(p, y), y)




# Metric name -> fitter. `svc` is reported as MIA-efficacy (% called NON-member), the rest as % member.
FITTERS: dict[str, Callable[[Shadow], Predictor]] = {
    "svc": fit_svc,
    "entropy_lr": fit_entropy_lr,
    "prob_lr": fit_prob_lr,
    **{f"sm_{k}": (lambda s, k=k: fit_sm(s, k)) for k in ("correctness", *SM_FEATURES)},
}
ATTACKS = tuple(FITTERS)
REPORTS_NON_MEMBER = frozenset({"svc"})


def metric_name(attack: str) -> str:
    """The metric an attack's score is reported under (its held-out accuracy: + "_bacc")."""
    return "mia_svc_efficacy" if attack == "svc" else f"mia_{attack}"


def all_attacks(shadow: Shadow, p_forget: np.ndarray, y_forget: np.ndarray) -> dict[str, np.ndarray]:
    """Every attack's member flags on the forget set (fitted on all of `shadow`), keyed by metric name."""
    return {name: fit(shadow)(p_forget, y_forget) for name, fit in FITTERS.items()}


# --------------------------------------------------------------------------- the MuGAN thesis' MIA
def thesis_mia(p_retain: np.ndarray, y_retain: np.ndarray, p_test: np.ndarray, y_test: np.ndarray,
               p_forget: np.ndarray, y_forget: np.ndarray) -> dict[str, Any]:
    """The MuGAN thesis' MIA (metric `mia_thesis`) as its code computes it (DataSystemsGroupUT/
    zero-shot-machine-unlearning, evaluation.get_membership_attack_prob): the entropy attack of
    `fit_entropy_lr` (balanced logistic regression on the output entropy) fitted ONCE, on every
    retain training sample (member) against the whole test set (non-member; the forgotten classes'
    test samples included), with no subsampling and no cross-fitting; then its prediction on the
    forget set. `score` = % of forget samples called member (the thesis' tables: 100 x the code's
    mean prediction). There is no held-out self-evaluation: `fit_bacc` is the attack's balanced
    accuracy on the very data it was fitted on (in-sample; recorded, never used to blank a cell)."""
    shadow = Shadow(p_retain, y_retain, p_test, y_test)
    predict = fit_entropy_lr(shadow)
    flags = predict(p_forget, y_forget)
    tpr, tnr = float(predict(p_retain, y_retain).mean()), float(1 - predict(p_test, y_test).mean())
    return {"score": float(flags.mean() * 100) if len(flags) else float("nan"), "member_flags": flags,
            "fit_bacc": (tpr + tnr) / 2, "n_members": int(len(y_retain)), "n_nonmembers": int(len(y_test)),
            "n_forget": int(len(y_forget))}


# --------------------------------------------------------------------------- self-evaluation
def wilson_interval(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion k/n (two-sided, level 1 - alpha)."""

    if n == 0:
        return 0.0, 1.0
    z = float(norm.ppf(1 - alpha / 2))
    ph = k / n
    den = 1 + z * z / n
    centre = (ph + z * z / (2 * n)) / den
    half = z * np.sqrt(ph * (1 - ph) / n + z * z / (4 * n * n)) / den
    return float(max(centre - half, 0.0)), float(min(centre + half, 1.0))


def chance_test(correct: int, n: int, alpha: float = 0.05) -> dict[str, Any]:
    """Balanced accuracy `correct / n` on a balanced held-out set against chance (0.5).

    Under "the attack's decisions are independent of membership" the number correct on a balanced
    set has variance <= n/4, so the binomial(n, 1/2) test is exact-or-conservative. `at_chance` is
    True when the Wilson interval's lower bound is <= 0.5 (about a one-sided test at alpha / 2).
    """

    lo, hi = wilson_interval(correct, n, alpha)
    p = float(binomtest(correct, n, 0.5, alternative="greater").pvalue) if n else 1.0
    return {"bacc": correct / n if n else float("nan"), "bacc_low": lo, "bacc_high": hi,
            "p_value": p, "at_chance": bool(lo <= 0.5)}


def evaluate_attacks(shadow: Shadow, p_forget: np.ndarray, y_forget: np.ndarray, seed: int = 0,
                     attacks: tuple[str, ...] = ATTACKS, folds: int = 2, alpha: float = 0.05) -> dict[str, dict[str, Any]]:
    """Every attack's forget-set score together with its own balanced accuracy on held-out shadow data.

    Cross-fitting (choice): the shadow data are split into `folds` balanced folds (seeded); the attack
    fitted on all folds but f predicts fold f. `shadow_bacc` is the pooled held-out balanced accuracy
    (every shadow sample is predicted by an attack that did not see it), with a Wilson interval
    (`bacc_low`, `bacc_high`), a one-sided binomial `p_value` and `at_chance` (see `chance_test`).
    The forget set is judged by the same fitted attacks: `member_rate` is the mean over folds of the
    % of forget samples called member, `member_frac` the per-sample fraction of folds that call it
    member; `score` is the table convention (100 - member_rate for svc's MIA-efficacy, member_rate
    otherwise). These attacks see half the shadow data each, so `score` can differ slightly from
    `all_attacks` (fitted on all of it), which stays as it was.
    """
    parts = shadow.folds(folds, seed)
    n = 2 * sum(len(a) for a, _ in parts)
    out = {}
    if n == 0:  # too few shadow samples to fit and test anything: nothing is known
        nan = float("nan")
        return {name: {"score": nan, "member_rate": nan, "shadow_bacc": nan, "bacc_low": nan, "bacc_high": nan,
                       "p_value": 1.0, "at_chance": True, "n_shadow_test": 0,
                       "member_frac": np.full(len(y_forget), nan)} for name in attacks}
    for name in attacks:
        correct, votes = 0, np.zeros(len(y_forget))
        for f, (a, b) in enumerate(parts):
            rest_a = np.concatenate([parts[g][0] for g in range(folds) if g != f])
            rest_b = np.concatenate([parts[g][1] for g in range(folds) if g != f])
            predict = FITTERS[name](shadow.take(rest_a, rest_b))
            correct += int(predict(shadow.p_in[a], shadow.y_in[a]).sum())
            correct += int((~predict(shadow.p_out[b], shadow.y_out[b])).sum())
            votes += predict(p_forget, y_forget)
        frac = votes / folds
        rate = float(frac.mean() * 100) if len(frac) else float("nan")
        test = chance_test(correct, n, alpha)
        out[name] = {"score": 100 - rate if name in REPORTS_NON_MEMBER else rate, "member_rate": rate,
                     "shadow_bacc": test["bacc"], "bacc_low": test["bacc_low"], "bacc_high": test["bacc_high"],
                     "p_value": test["p_value"], "at_chance": test["at_chance"], "n_shadow_test": n,
                     "member_frac": frac}
    return out


AT_CHANCE_TEXT = "n/a (attack at chance)"


def aggregate_scores(scores, at_chance, min_share: float = 0.5) -> dict[str, Any]:
    """One table cell from per-seed attack scores and their `at_chance` decisions.

    Seeds whose attack is at chance carry no information and are dropped. The cell is informative
    when more than `min_share` of the seeds remain (choice: a majority); it then shows the mean and
    (sample) std over those seeds, and `n`/`n_seeds` say how many were used. Otherwise `mean` is NaN
    and `text` is AT_CHANCE_TEXT; such a cell is left out of averages (e.g. an average gap to retrain).
    """
    s, c = np.asarray(scores, float), np.asarray(at_chance, bool)
    keep = s[~c & np.isfinite(s)]
    n, total = int(len(keep)), int(len(s))
    if total == 0 or n <= min_share * total:
        return {"mean": float("nan"), "std": float("nan"), "n": n, "n_seeds": total, "informative": False,
                "text": AT_CHANCE_TEXT}
    mean, std = float(keep.mean()), float(keep.std(ddof=1)) if n > 1 else 0.0
    text = f"{mean:.1f} ± {std:.1f}" + (f" ({n}/{total} seeds)" if n < total else "")
    return {"mean": mean, "std": std, "n": n, "n_seeds": total, "informative": True, "text": text}
