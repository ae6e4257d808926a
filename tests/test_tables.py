"""Study tables: paired per-seed gaps, intervals, n = 1 rendering, attacks at chance, censoring, cost."""

import math

import pytest

from unlearnbench.report.tables import aggregate, aggregate_cost, display_frame, fmt_cell, plot_gaps, render_latex, \
    render_markdown, t_interval

BASE = {"dataset": "digits", "model": "cnn", "scenario": "class0", "access": "x"}


def _rec(method, name, seed, metrics, replica=0, cost=None):
    return {**BASE, "method": method, "method_name": name, "replica": replica, "seed": seed, "metrics": metrics,
            "cost": cost}


def _records():
    return [
        _rec("retrain", "retrain", 0, {"acc_forget": 0.0, "acc_retain": 99.0}),
        _rec("retrain", "retrain", 1, {"acc_forget": 100.0, "acc_retain": 97.0}),
        # a method that is exactly the opposite of retrain on each seed: the means agree, the runs do not
        _rec("flip", "finetune", 0, {"acc_forget": 100.0, "acc_retain": 95.0}),
        _rec("flip", "finetune", 1, {"acc_forget": 0.0, "acc_retain": 93.0}),
    ]


def test_gaps_are_paired_per_seed_not_between_means():
    t = aggregate(_records(), ["acc_forget", "acc_retain"]).set_index(["method", "metric"])
    assert t.loc[("flip", "acc_forget"), "mean"] == 50.0  # same mean as retrain ...
    assert t.loc[("flip", "acc_forget"), "gap_mean"] == 100.0  # ... but 100 points off on every seed
    assert t.loc[("flip", "acc_retain"), "gap_mean"] == 4.0 and t.loc[("flip", "acc_retain"), "gap_std"] == 0.0
    # average gap per seed: seed 0 (100 + 4) / 2, seed 1 (100 + 4) / 2
    assert t.loc[("flip", "avg_gap"), "mean"] == 52.0 and t.loc[("flip", "avg_gap"), "n"] == 2
    assert math.isnan(t.loc[("retrain", "acc_forget"), "gap_mean"]) and ("retrain", "avg_gap") not in t.index


def test_t_interval_matches_the_formula():
    mean, std, lo, hi = t_interval([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5 and std == pytest.approx(math.sqrt(5 / 3))
    half = 3.182446305284263 * std / 2  # t_{0.975, 3} * s / sqrt(4)
    assert lo == pytest.approx(2.5 - half) and hi == pytest.approx(2.5 + half)
    m1 = t_interval([7.0])
    assert m1[0] == 7.0 and all(math.isnan(v) for v in m1[1:])


def test_single_seed_renders_without_a_fake_spread_and_says_n():
    recs = [r for r in _records() if r["seed"] == 0]
    tidy = aggregate(recs, ["acc_forget"])
    wide, _ = display_frame(tidy, None, ["acc_forget"])
    row = wide.set_index("Method").loc["flip"]
    assert row["UA"] == "100.00 (Δ 100.00)" and row["n"] == 1  # no "± 0.00"
    two, _ = display_frame(aggregate(_records(), ["acc_forget"]), None, ["acc_forget"])
    assert two.set_index("Method").loc["flip", "UA"] == "50.00 ± 70.71 (Δ 100.00)"


def test_attack_at_chance_renders_na_and_leaves_the_average_gap():
    def rec(method, name, seed, score, low):
        return _rec(method, name, seed, {"acc_forget": 10.0 * seed, "mia_svc_efficacy": score,
                                         "mia_svc_efficacy_bacc": 0.5, "mia_svc_efficacy_bacc_low": low})
    recs = [rec("retrain", "retrain", s, 100.0, 0.6) for s in (0, 1, 2)] + \
           [rec("m", "gradient_ascent", s, 0.0, low) for s, low in ((0, 0.45), (1, 0.48), (2, 0.7))]
    tidy = aggregate(recs, ["acc_forget", "mia_svc_efficacy"])
    t = tidy.set_index(["method", "metric"])
    assert t.loc[("m", "mia_svc_efficacy"), "at_chance_seeds"] == 2
    # seeds 0, 1: only acc_forget counts (gap 0); seed 2: (0 + 100) / 2
    assert t.loc[("m", "avg_gap"), "mean"] == pytest.approx(50 / 3)
    wide, notes = display_frame(tidy, None, ["acc_forget", "mia_svc_efficacy"])
    assert wide.set_index("Method").loc["m", "MIA-eff."] == "n/a†" and any("attack at chance" in n for n in notes)
    assert "signal 0.50" in wide.set_index("Method").loc["retrain", "MIA-eff."]


def test_censored_relearn_times_render_as_bounds_and_na():
    recs = [_rec("retrain", "retrain", 0, {"ain_epochs": float("nan"), "ain_epochs_censor": 2}),
            _rec("a", "unsir", 0, {"ain_epochs": float("nan"), "ain_epochs_censor": 2}),
            _rec("b", "finetune", 0, {"ain_epochs": 1.5, "ain_epochs_censor": 1}),
            _rec("c", "finetune", 0, {"ain_epochs": 0.5, "ain_epochs_censor": -1})]
    wide, notes = display_frame(aggregate(recs, []), None, ["ain_epochs"])
    cells = wide.set_index("Method")["AIN (epochs)"]
    assert cells["a"] == "n/a (capped)" and cells["b"].startswith("≥ 1.50") and cells["c"].startswith("≤ 0.50")
    assert "1.00" not in cells["a"] and any("cap" in n for n in notes)


def test_default_time_column_includes_artefacts():
    cost = {"time_s": 12.0, "time_step_s": 2.0, "time_artefacts_s": 10.0, "peak_mem_mb": 5.0, "speedup": 2.0,
            "speedup_step": 12.0, "machine": {"cpu": "X", "torch_threads": 1, "device": "cpu"}}
    recs = [_rec("retrain", "retrain", 0, {"acc_forget": 0.0}, cost={**cost, "time_s": 24.0, "time_step_s": 24.0}),
            _rec("u", "unsir", 0, {"acc_forget": 1.0}, cost=cost)]
    c = aggregate_cost(recs)
    wide, _ = display_frame(aggregate(recs, ["acc_forget"]), c, ["acc_forget"])
    row = wide.set_index("Method").loc["u"]
    assert row["Time (s)"] == "12.00" and row["Step (s)"] == "2.00" and row["Speed-up"] == "2.0"
    assert c.attrs["machines"] == ["X (1 threads, cpu, numerics native)"]  # no mode recorded: the unpinned paths


def test_render_markdown_latex_and_plot():
    tidy = aggregate(_records(), ["acc_forget", "acc_retain"])
    wide, notes = display_frame(tidy, None, ["acc_forget", "acc_retain"], ua_convention="error")
    assert wide.set_index("Method").loc["flip", "UA (100−acc)"] == "50.00 ± 70.71 (Δ 100.00)"
    md = render_markdown(wide, "T", "caption", notes)
    assert "| class0 | retrain | x | 2 |" in md and "caption" in md
    tex = render_latex(wide, "a_b")
    assert r"\begin{tabular}" in tex and r"a\_b" in tex and r"$\pm$" in tex and r"$\Delta$" in tex
    fig = plot_gaps(tidy, ["acc_forget", "acc_retain"], "T")
    ax = fig.axes[0]  # each row's average gap and its interval, on a scale that fits the methods
    assert len(fig.axes) == 1 and ax.lines and "flip (n=2)" in [t.get_text() for t in ax.get_yticklabels()]
    assert ax.get_xlim()[0] == 0


def test_fmt_cell_missing_values():
    assert fmt_cell(None) == "–"
    assert fmt_cell({"mean": float("nan"), "std": float("nan")}) == "–"
