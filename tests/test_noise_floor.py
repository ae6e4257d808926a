"""The noise-floor row (retrain vs retrain). `replica: 1` trains a second gold model per seed; a
`seed_cycle` instance reads the next seed's gold retrain instead (the data, split and request do not
depend on the seed), so the row costs no training: the DAG, its evaluation inputs and the caption."""

from __future__ import annotations

import copy

import pytest

from conftest import TINY_CONFIG, dry_run_jobs, run_snakemake


def test_a_seed_cycle_maps_each_seed_to_the_next_one():
    from unlearnbench.methods import create_method

    m = create_method({"method": "retrain", "replica": 1, "seed_cycle": [4, 0, 2]})
    assert [m.partner_seed(s) for s in (4, 0, 2)] == [0, 2, 4]
    assert create_method({"method": "retrain", "replica": 1}).partner_seed(4) is None  # a trained replica


def test_the_named_floor_replaces_the_default_one():
    from unlearnbench.studies import study_methods

    cfg = {"methods": {"retrain": {"method": "retrain"}, "xs": {"method": "retrain", "replica": 1, "seed_cycle": [0, 1]},
                       "retrain_indep": {"method": "retrain", "replica": 1}, "ft": {"method": "finetune"}},
           "studies": {"t": {"methods": ["retrain", "ft"], "seeds": [0, 1]}}}
    assert study_methods(cfg, "t") == ["retrain", "retrain_indep", "ft"]  # a seed_cycle row only where named
    cfg["studies"]["t"]["noise_floor"] = "xs"
    assert study_methods(cfg, "t") == ["retrain", "xs", "ft"]


def test_the_caption_says_which_floor_the_table_has():
    from unlearnbench.report.study import floor_text

    assert floor_text([]).startswith("retrain_indep = a second, independently trained retrain")
    text = floor_text([{"method": "retrain", "replica": 0}, {"method": "xs", "replica": 1, "seed_cycle": [0, 1, 2]}])
    assert text.startswith("xs = the retrain of the next seed of [0, 1, 2]") and "no extra training" in text


@pytest.mark.integration
def test_a_seed_cycle_floor_trains_no_model_and_reads_the_next_seeds_retrain(tmp_path):
    cfg = copy.deepcopy(TINY_CONFIG)
    cfg["methods"] = {"xs": {"method": "retrain", "replica": 1, "seed_cycle": [0, 1, 2]}}
    cfg["studies"] = {"t": {"dataset": "tiny_digits", "model": "tiny_cnn", "training": "tiny", "scenarios": ["class0"],
                            "methods": ["original", "retrain"], "seeds": [0, 1, 2], "noise_floor": "xs"}}
    jobs = dry_run_jobs(run_snakemake(tmp_path, cfg, ["results/tables/t.csv"], "-n").stdout)
    trained = [j for j in jobs if j["rule"] == "train_retrain"]
    assert sorted(j["wildcards"]["seed"] for j in trained) == ["0", "1", "2"]  # the gold models alone
    assert all(not j["wildcards"].get("replica") for j in trained)
    floor = {j["wildcards"]["seed"]: j["input"] for j in jobs
             if j["rule"] == "evaluate_reference" and j["wildcards"]["method"] == "xs"}
    models = "results/models/tiny_digits/tiny_cnn/tiny/s{}/retrain_class0.safetensors"
    for seed, partner in (("0", 1), ("1", 2), ("2", 0)):
        assert models.format(partner) in floor[seed] and models.format(seed) in floor[seed]  # its model; the gold one


@pytest.mark.integration
def test_a_seed_cycle_floor_row_measures_the_next_seeds_gold_model(tmp_path):
    """Built: the floor row at seed s has the accuracies of the gold retrain of seed s + 1 (the same model
    on the same data), a nonzero gap to the gold model of its own seed, and the caption names it."""
    import json

    import pandas as pd

    cfg = copy.deepcopy(TINY_CONFIG)
    cfg["training"]["tiny"]["epochs"] = 2
    cfg["methods"] = {"xs": {"method": "retrain", "replica": 1, "seed_cycle": [0, 1]}}
    cfg["studies"] = {"t": {"dataset": "tiny_digits", "model": "tiny_cnn", "training": "tiny", "scenarios": ["class0"],
                            "methods": ["original", "retrain"], "seeds": [0, 1], "noise_floor": "xs",
                            "metrics": ["acc_forget", "acc_retain", "acc_test_retain"]}}
    run_snakemake(tmp_path, cfg, ["results/tables/t.csv"])
    runs = tmp_path / "results" / "runs" / "tiny_digits" / "tiny_cnn" / "tiny"
    m = {(s, r): json.loads((runs / f"s{s}" / "class0" / r / "metrics.json").read_text())["metrics"]
         for s in (0, 1) for r in ("retrain", "xs")}
    for s, partner in ((0, 1), (1, 0)):
        for k in ("acc_forget", "acc_retain", "acc_test_retain"):
            assert m[(s, "xs")][k] == m[(partner, "retrain")][k], (s, k)
    tidy = pd.read_csv(tmp_path / "results" / "tables" / "t.csv")
    gaps = tidy[(tidy.method == "xs") & (tidy.metric == "acc_retain")]
    assert len(gaps) == 1 and gaps["n"].iloc[0] == 2
    assert "xs = the retrain of the next seed of [0, 1]" in (tmp_path / "results" / "tables" / "t.md").read_text()
