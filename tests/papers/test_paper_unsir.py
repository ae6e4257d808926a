"""Integration: UNSIR's Table I and Figs 2-6 through Snakemake at tiny size (about a minute on CPU);
the default config plans Fig. 5 from Table III's checkpoints and Fig. 6 from Table II's cost table."""

from __future__ import annotations

import copy
import json

import pandas as pd
import pytest

from conftest import TINY_CONFIG, dry_run_jobs, run_snakemake

pytestmark = pytest.mark.integration


def tiny_unsir_config(repair_lr=0.01):
    cfg = copy.deepcopy(TINY_CONFIG)
    cfg["relearn"] = {"epochs_max": 5, "steps_max_epochs": 2}
    cfg["methods"] = {"unsir_tiny": {"method": "unsir", "noise_batch": 32, "noise_steps": 10, "noise_copies": 2,
                                     "batch_size": 32, "repair_lr": repair_lr}}
    cfg["studies"] = {"unsir_table1": {
        "setups": [{"dataset": "tiny_digits", "model": "tiny_cnn", "training": "tiny"}],
        "scenarios": ["unsir_c1_2"],
        "methods": ["original", "retrain", "unsir_tiny"],
        "seeds": [0],
        "metrics": ["acc_retain", "acc_forget", "relearn_epochs", "relearn_steps", "ain_epochs", "ain_steps"],
        "gap_metrics": ["acc_retain", "acc_forget"],
        "extras": ["relearn"],
    }}
    cfg["figures"] = {f: {"select": {"scenarios": ["unsir_c1_2"], "seeds": [0], "methods": m}}
                      for f, m in (("unsir_fig2", ["unsir_tiny"]), ("unsir_fig3", ["retrain", "unsir_tiny"]),
                                   ("unsir_fig4", ["retrain", "unsir_tiny"]))}
    # Fig. 5 (Grad-CAM) and Fig. 6 (time) from the tiny Table I's runs and cost table
    cfg["figures"]["unsir_fig5"] = {"study": "unsir_table1", "options": {"min_size": 1},
                                    "select": {"scenarios": ["unsir_c1_2"], "seeds": [0],
                                               "methods": ["original", "retrain", "unsir_tiny"]}}
    cfg["figures"]["unsir_fig6"] = {"studies": ["unsir_table1"], "options": {"methods": ["retrain", "unsir_tiny"],
                                                                             "highlight": "unsir"}}
    return cfg


def test_unsir_table1_and_figures(tmp_path):
    cfg = tiny_unsir_config()
    targets = ["results/tables/unsir_table1.csv", "results/figures/unsir_fig2.png",
               "results/figures/unsir_fig3.png", "results/figures/unsir_fig4.png", "results/figures/unsir_fig5.png",
               "results/figures/unsir_fig6.png"]
    run_snakemake(tmp_path, cfg, targets)
    for t in targets + ["results/tables/unsir_table1.md", "results/figures/unsir_fig4.csv"]:
        assert (tmp_path / t).stat().st_size > 0, t
    cam = pd.read_csv(tmp_path / "results/figures/unsir_fig5.csv")
    assert list(dict.fromkeys(cam["method"])) == ["original", "retrain", "unsir_tiny"]
    assert set(cam.drop_duplicates("index")["role"]) == {"forget", "retain"}
    assert set(cam[cam.role == "forget"]["label"]) <= {1, 2} and not set(cam[cam.role == "retain"]["label"]) & {1, 2}
    # Fig. 6: the time bars are the cost table's rows (UNSIR's includes its noise)
    bars = pd.read_csv(tmp_path / "results/figures/unsir_fig6.csv").set_index(["method", "metric"])["mean"]
    assert list(dict.fromkeys(i[0] for i in bars.index)) == ["retrain", "unsir_tiny"]
    df = pd.read_csv(tmp_path / "results/tables/unsir_table1.csv")
    cell = df.set_index(["scenario", "method", "metric"])
    sc = "unsir_c1_2"
    assert cell.loc[(sc, "original", "relearn_steps"), "mean"] == 0.0  # already at the original's accuracy
    for m in ("relearn_epochs", "relearn_steps", "ain_epochs", "ain_steps"):
        assert (sc, "unsir_tiny", m) in cell.index, (sc, m)
    cost = pd.read_csv(tmp_path / "results/tables/unsir_table1.cost.csv").set_index(["method", "metric"])["mean"]
    # the time includes the noise: strictly more than the unlearning step alone
    assert cost[("unsir_tiny", "time_s")] > cost[("unsir_tiny", "time_step_s")] > 0
    # one noise file per forget class
    noise = sorted(p.name for p in (tmp_path / "results/artefacts").rglob("class*.safetensors"))
    assert noise == ["class1.safetensors", "class2.safetensors"]
    info = json.loads(next((tmp_path / "results/runs").rglob("unsir_c1_2/unsir_tiny/unlearn.json")).read_text())
    assert info["info"]["n_noise"] == 2 * 2 * 32
    # the default retain_per_class (1000) exceeds every digits class: the table says "retain (all)"
    assert info["access"] == "retain (all)" and set(df[df.method == "unsir_tiny"]["access"]) == {"retain (all)"}
    # changing a repair setting reruns the unlearning but never the noise
    dry = run_snakemake(tmp_path, tiny_unsir_config(repair_lr=0.005), ["results/tables/unsir_table1.csv"], "-n")
    out = dry.stdout + dry.stderr
    assert "unlearn " in out and "make_noise " not in out, out[-2000:]


def test_fig5_and_fig6_read_table3_checkpoints_and_table2_costs(tmp_path):
    dry = run_snakemake(tmp_path, {"device": "cpu"}, ["results/papers/unsir.md"], "-n")
    figs = {j["wildcards"]["figure"]: j["input"] for j in dry_run_jobs(dry.stdout) if j["rule"] == "report_figure"}
    base = "results/models/digits/unsir_resnet18/digits/s0"
    runs = "results/runs/digits/unsir_resnet18/digits/s0"
    assert sorted(p for p in figs["unsir_fig5"] if p.endswith(".safetensors")) == sorted(
        [f"{base}/original.safetensors", f"{base}/retrain_unsir_c0.safetensors", f"{base}/retrain_unsir_m40.safetensors",
         f"{runs}/unsir_c0/unsir/model.safetensors", f"{runs}/unsir_m40/unsir/model.safetensors"])
    assert sorted(figs["unsir_fig6"]) == ["results/tables/unsir_table2.cost.csv", "results/tables/unsir_table2.csv"]
