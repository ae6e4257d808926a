"""Claims as checks over table cells (report/claims.py): paired differences over seeds, a 95 %
t-interval, and a verdict that says inconclusive when the interval does not decide."""

from __future__ import annotations

import math

import pytest

from unlearnbench.report.claims import check_claim, judge, per_seed


@pytest.mark.parametrize("d, test, verdict", [
    ([-3.0, -2.5, -3.5], "less", "reproduced"),
    ([3.0, 2.5, 3.5], "less", "not reproduced"),
    ([-3.0, 2.5, 0.5], "less", "inconclusive"),
    ([3.0, 2.5, 3.5], "greater", "reproduced"),
    ([0.1, -0.2, 0.05], "equal", "reproduced"),   # margin 1
    ([5.0, 5.5, 4.5], "equal", "not reproduced"),
    ([0.0, 2.0, -1.0], "equal", "inconclusive"),
    ([-3.0], "less", "inconclusive"),             # one seed: no interval
])
def test_the_verdict_reads_the_interval(d, test, verdict):
    assert judge(d, test, margin=1.0)[0] == verdict


def test_a_boundary_other_than_zero():
    assert judge([6.0, 6.1, 5.9], "greater", by=5.0)[0] == "reproduced"
    assert judge([4.0, 4.1, 3.9], "greater", by=5.0)[0] == "not reproduced"


def _records():
    recs = []
    for seed, (ua_m, ua_r, t_m, t_r) in enumerate([(1.0, 0.0, 2.0, 10.0), (2.0, 0.0, 2.5, 11.0), (1.5, 0.0, 2.2, 9.0)]):
        for row, name, ua, t in (("mine", "finetune", ua_m, t_m), ("retrain", "retrain", ua_r, t_r)):
            recs.append({"dataset": "d", "model": "m", "scenario": "class0", "method": row, "method_name": name, "seed": seed,
                         "metrics": {"acc_forget": ua, "acc_retain": 99.0}, "cost": {"time_s": t, "speedup": t_r / t}})
    return recs


def test_a_claim_pairs_rows_by_seed_and_reports_n_and_the_interval():
    seeds = per_seed(_records(), ["acc_forget", "acc_retain"])
    assert seeds[("d", "m", "class0", "mine", 1)]["avg_gap"] == pytest.approx(1.0)  # (|2 − 0| + 0) / 2
    row = check_claim({"id": "x", "claim": "forgets as retrain does", "paper": "0.0 (Table 3)", "study": "t",
                       "metric": "acc_forget", "a": "mine", "b": "retrain", "test": "equal", "margin": 3.0}, seeds)
    assert row["n"] == 3 and row["d_mean"] == pytest.approx(1.5) and row["verdict"] == "reproduced"
    fast = check_claim({"id": "y", "claim": "5x faster", "paper": "5x", "study": "t", "metric": "speedup", "a": "mine",
                        "value": 3.0, "test": "greater"}, seeds)
    assert fast["verdict"] == "reproduced" and fast["a_mean"] > 4


def test_a_row_absent_from_the_cell_is_inconclusive_and_says_why():
    row = check_claim({"id": "z", "claim": "c", "paper": "p", "study": "t", "metric": "acc_forget", "a": "mine",
                       "b": "retrain", "test": "less", "where": {"scenario": "random10"}},
                      per_seed(_records(), ["acc_forget"]))
    assert row["verdict"] == "inconclusive" and row["n"] == 0 and "no run" in row["note"] and math.isnan(row["d_mean"])


def test_a_claim_an_overlay_left_without_its_rows_is_not_checked_and_says_why():
    row = check_claim({"id": "w", "claim": "c", "paper": "p", "study": "t", "metric": "acc_forget", "a": "gone",
                       "b": "retrain", "test": "less", "unavailable": "row gone is not in study t"},
                      per_seed(_records(), ["acc_forget"]))
    assert row["verdict"] == "not checked" and row["note"] == "row gone is not in study t"


@pytest.mark.integration
def test_the_claims_target_builds_its_tables_and_judges_each_claim(tmp_path):
    import copy

    from conftest import TINY_CONFIG, run_snakemake

    cfg = copy.deepcopy(TINY_CONFIG)
    cfg["training"]["tiny"]["epochs"] = 3
    cfg["methods"] = {"finetune": {"method": "finetune", "epochs": 1, "tune": None}}
    cfg["studies"] = {"tiny": {"dataset": "tiny_digits", "model": "tiny_cnn", "training": "tiny", "scenarios": ["class0"],
                               "methods": ["original", "retrain", "finetune"], "seeds": [0, 1, 2], "noise_floor": False}}
    cfg["papers"] = {"p": {"studies": ["tiny"], "claims": [
        {"id": "original_remembers", "claim": "the original still knows the class", "paper": "100 vs 0", "study": "tiny",
         "metric": "acc_forget", "a": "original", "b": "retrain", "test": "greater", "by": 20},
        {"id": "gone", "claim": "a row an overlay removed", "paper": "-", "study": "tiny", "metric": "acc_forget",
         "a": "nope", "value": 0, "test": "less"}]}}
    run_snakemake(tmp_path, cfg, ["results/papers/p.claims.md"])
    md = (tmp_path / "results/papers/p.claims.md").read_text()
    rows = {r["id"]: r for r in __import__("csv").DictReader(open(tmp_path / "results/papers/p.claims.csv"))}
    assert rows["original_remembers"]["verdict"] == "reproduced" and rows["original_remembers"]["n"] == "3"
    assert rows["gone"]["verdict"] == "not checked" and "row nope is not in study tiny" in rows["gone"]["note"]
    assert "Verdicts: 1 reproduced, 0 not reproduced, 0 inconclusive, 1 not checked." in md
