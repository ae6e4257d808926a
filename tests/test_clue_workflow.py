"""Integration: one CLUE table (Table 8's ablation layout) at tiny size through the real workflow,
plus the mask artefact's dependencies (changing CLUE's lr must not recompute the mask)."""

import pandas as pd

from conftest import run_snakemake

CLUE = {"method": "clue", "lr": 1.0e-2, "epochs": 3, "batch_size": 64, "mask_mode": "top_layer",
        "mask_fraction": 0.05, "temperature": 10.0, "lambda_energy": 1.0}


def _config(tiny_config, lr=1.0e-2):
    cfg = dict(tiny_config)
    cfg["methods"] = {"tiny_clue": {**CLUE, "lr": lr}, "tiny_clue_nomask": {**CLUE, "use_mask": False},
                      "tiny_be": {"method": "boundary_expand", "epochs": 1}}
    cfg["studies"] = {"clue_tiny": {
        "title": "tiny CLUE ablation", "dataset": "tiny_digits", "model": "tiny_cnn", "training": "tiny",
        "scenarios": ["clue_class2"], "methods": ["original", "retrain", "tiny_clue", "tiny_clue_nomask", "tiny_be"],
        "seeds": [0], "extras": ["clue_energy"]}}
    cfg["clue_figures"] = {"dataset": "tiny_digits", "model": "tiny_cnn", "training": "tiny", "seed": 0,
                           "scenario": "clue_class2", "method": "tiny_clue", "tsne_samples": 100,
                           "fig5_tables": ["clue_tiny"]}
    return cfg


def test_clue_table_tiny(tmp_path, tiny_config):
    cfg = _config(tiny_config)
    run_snakemake(tmp_path, cfg, ["results/tables/clue_tiny.csv", "results/figures/clue_fig4.png",
                                  "results/figures/clue_fig5.png"])
    df = pd.read_csv(tmp_path / "results/tables/clue_tiny.csv")
    cell = df.set_index(["method", "metric"])["mean"]
    for m in ("tiny_clue", "tiny_clue_nomask", "tiny_be"):
        for k in ("acc_forget", "acc_retain", "acc_test_retain", "mia_svc_efficacy", "avg_gap", "time_s",
                  "peak_mem_mb", "speedup", "neg_hfe_forget", "neg_hfe_retain"):
            assert (m, k) in cell.index, (m, k)
    assert set(df[df.method == "tiny_clue"]["access"]) == {"forget"}
    masks = list((tmp_path / "results/artefacts").rglob("clue_mask_*.safetensors"))
    assert len(masks) == 1  # the no-mask ablation asks for none
    for f in ("clue_fig4.png", "clue_fig4.csv", "clue_fig5.png", "clue_fig5.csv"):
        assert (tmp_path / "results/figures" / f).stat().st_size > 0
    # a different CLUE lr reruns unlearning but not the mask (its path depends on mask settings only)
    dry = run_snakemake(tmp_path, _config(tiny_config, lr=3.0e-3), ["results/tables/clue_tiny.csv"], "-n")
    assert "rule unlearn:" in dry.stdout and "rule clue_mask:" not in dry.stdout
