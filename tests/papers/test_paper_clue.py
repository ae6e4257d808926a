"""Integration: one CLUE table (Table 8's ablation layout) and the CLUE figures at tiny size
through the real workflow, plus the mask artefact's dependencies."""

import pandas as pd
import pytest

from conftest import dry_run_jobs, run_snakemake

pytestmark = pytest.mark.integration

CLUE = {"method": "clue", "lr": 1.0e-2, "epochs": 3, "batch_size": 64, "mask_mode": "top_layer",
        "mask_fraction": 0.05, "temperature": 10.0, "lambda_energy": 1.0}


def _config(tiny_config, lr=1.0e-2):
    cfg = dict(tiny_config)
    cfg["methods"] = {"tiny_clue": {**CLUE, "lr": lr}, "tiny_clue_nomask": {**CLUE, "use_mask": False},
                      "tiny_be": {"method": "boundary_expand", "epochs": 1}}
    cfg["studies"] = {"clue_tiny": {
        "title": "tiny CLUE ablation", "dataset": "tiny_digits", "model": "tiny_cnn", "training": "tiny",
        "scenarios": ["clue_class2"], "methods": ["original", "retrain", "tiny_clue", "tiny_clue_nomask", "tiny_be"],
        "seeds": [0], "extras": ["energy"]}}
    cfg["figures"] = {
        "clue_fig2": {"study": "clue_tiny", "select": {"methods": ["original", "tiny_clue"]},
                      "options": {"before": "original", "after": "tiny_clue", "max_samples": 100}},
        "clue_fig4": {"study": "clue_tiny", "select": {"methods": ["original", "tiny_clue"]},
                      "options": {"before": "original", "after": "tiny_clue"}},
        "clue_fig5": {"studies": ["clue_tiny"]},
        # Table 6's maps on the tiny CNN: Grad-CAM (a ViT gets attention rollout, tests/test_figure_kinds.py)
        "clue_table6": {"study": "clue_tiny", "select": {"methods": ["original", "tiny_clue"]},
                        "options": {"map": "auto", "classes": [0, 2], "per_class": 1}}}
    cfg["papers"] = {"clue": {"studies": ["clue_tiny"], "figures": ["clue_fig4", "clue_fig5", "clue_table6"]}}
    return cfg


def test_clue_table_tiny(tmp_path, tiny_config):
    cfg = _config(tiny_config)
    run_snakemake(tmp_path, cfg, ["results/papers/clue.md"])
    df = pd.read_csv(tmp_path / "results/tables/clue_tiny.csv")
    cell = df.set_index(["method", "metric"])["mean"]
    for m in ("tiny_clue", "tiny_clue_nomask", "tiny_be"):
        for k in ("acc_forget", "acc_retain", "acc_test_retain", "mia_svc_efficacy", "avg_gap", "neg_hfe_forget",
                  "neg_hfe_retain"):
            assert (m, k) in cell.index, (m, k)
    cost = pd.read_csv(tmp_path / "results/tables/clue_tiny.cost.csv").set_index(["method", "metric"])["mean"]
    # CLUE's time includes its mask artefact; the no-mask ablation has no artefact time
    assert cost[("tiny_clue", "time_s")] > cost[("tiny_clue", "time_step_s")] > 0
    assert cost[("tiny_clue", "time_artefacts_s")] > 0 and cost[("tiny_clue_nomask", "time_artefacts_s")] == 0
    assert set(df[df.method == "tiny_clue"]["access"]) == {"forget"}
    masks = list((tmp_path / "results/artefacts").rglob("mask_*.safetensors"))
    assert len(masks) == 1  # the no-mask ablation asks for none
    for f in ("clue_fig4.png", "clue_fig4.csv", "clue_fig5.png", "clue_fig5.csv", "clue_table6.png"):
        assert (tmp_path / "results/figures" / f).stat().st_size > 0
    maps = pd.read_csv(tmp_path / "results/figures/clue_table6.csv").drop_duplicates(["index", "method"])
    assert list(maps["label"]) == [0, 0, 2, 2] and list(maps["role"]) == ["retain", "retain", "forget", "forget"]
    page = (tmp_path / "results/papers/clue.md").read_text()
    assert "tiny CLUE ablation" in page and "../figures/clue_fig4.png" in page
    # a different CLUE lr reruns unlearning but not the mask (its path depends on mask settings only)
    dry = run_snakemake(tmp_path, _config(tiny_config, lr=3.0e-3), ["results/tables/clue_tiny.csv"], "-n")
    assert "rule unlearn:" in dry.stdout and "rule make_mask:" not in dry.stdout


def test_table6_reads_the_vit_checkpoints_of_table1(tmp_path):
    dry = run_snakemake(tmp_path, {"device": "cpu"}, ["results/papers/clue.md"], "-n")
    figs = {j["wildcards"]["figure"]: j["input"] for j in dry_run_jobs(dry.stdout) if j["rule"] == "report_figure"}
    ckpts = sorted(p for p in figs["clue_table6"] if p.endswith(".safetensors"))
    base, runs = "results/models/digits/clue_vit_base/clue_vit/s0", "results/runs/digits/clue_vit_base/clue_vit/s0/clue_class2"
    assert ckpts == sorted([f"{base}/original.safetensors", f"{base}/retrain_clue_class2.safetensors",
                            f"{runs}/boundary_expand/model.safetensors", f"{runs}/clue/model.safetensors"])
