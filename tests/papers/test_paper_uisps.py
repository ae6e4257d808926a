"""Integration: UISPS (paper 004) through Snakemake. A tiny Table-I-like study (UISPS, TTM with
SPS, a retained-data proportion row) and Fig. 3 on 8 px digits, the
zero-data inversion rule, artefact reuse, and a dry run of every UISPS target (default and
full-scale overlay)."""

from __future__ import annotations

import copy
import json
import re

import pandas as pd
import pytest
import yaml

from conftest import REPO, TINY_CONFIG, run_snakemake

pytestmark = pytest.mark.integration

INV = {"inv_iters": 30, "inv_samples": 16}
SETUP = {"dataset": "tiny_digits", "model": "tiny_cnn", "training": "tiny"}
METHODS = ["original", "retrain", "uisps_tiny", "uisps_tiny_ttm_sps", "uisps_tiny_ft_p50"]


def tiny_uisps_config(alpha: float = 1.5) -> dict:
    cfg = copy.deepcopy(TINY_CONFIG)
    cfg["methods"] = {
        "uisps_tiny": {"method": "uisps", **INV, "lr": 0.03, "alpha": alpha},
        "uisps_tiny_ttm_sps": {"method": "sps", "base": "bad_teacher", **INV, "lr": 0.01},
        "uisps_tiny_ft_p50": {"method": "partial_retain", "base": "finetune", "data_fraction": 0.5, "epochs": 1},
    }
    cfg["studies"] = {"uisps_table1": {"setups": [SETUP], "scenarios": ["uisps_c1_2"], "methods": METHODS, "seeds": [0],
                                       "noise_floor": False}}  # tiny: no second retrain
    cfg["figures"] = {"uisps_fig3": {"study": "uisps_table1", "select": {
        "scenarios": ["uisps_c1_2"], "seeds": [0], "methods": ["original", "uisps_tiny"]},
        "options": {"features": "original", "max_real": 300, "seed": 0}},
        # the paper's other figures select from uisps_table1 too: point them at this study's rows
        "uisps_fig4": {"select": {"scenarios": ["uisps_c1_2"], "seeds": [0], "methods": ["uisps_tiny"]}},
        "uisps_fig5": {"select": {"scenarios": ["uisps_c1_2"], "seeds": [0], "methods": ["retrain", "uisps_tiny"]}}}
    return cfg


def _jobs(out: str, rule: str) -> list[dict[str, str]]:
    """The jobs of `rule` in a dry run's output: {"input": ..., "output": ...} per job."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", out):
        if re.match(rf"(?:local)?rule {rule}:", block.strip()):
            fields = dict(re.findall(r"^\s+(input|output): (.*)$", block, re.M))
            jobs.append(fields)
    return jobs


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    work = tmp_path_factory.mktemp("uisps")
    targets = ["results/tables/uisps_table1.csv", "results/figures/uisps_fig3.png"]
    run_snakemake(work, tiny_uisps_config(), targets)
    return work


def test_table_and_figure_3(built):
    df = pd.read_csv(built / "results/tables/uisps_table1.csv")
    cell = df.set_index(["method", "metric"])["mean"]
    assert set(METHODS) <= set(df["method"])
    assert cell[("original", "acc_test_forget")] > 80
    for m in ("uisps_tiny", "uisps_tiny_ttm_sps"):  # they forget and keep most of the retained accuracy
        assert cell[(m, "acc_test_forget")] < 20, m
        assert cell[(m, "acc_test_retain")] > 60, m
    assert "mia_prob_lr" in set(df["metric"])
    cost = pd.read_csv(built / "results/tables/uisps_table1.cost.csv").set_index(["method", "metric"])["mean"]
    # the time includes the inversion and the importance: strictly more than the unlearning step
    for m in ("uisps_tiny", "uisps_tiny_ttm_sps"):
        assert cost[(m, "time_s")] > cost[(m, "time_step_s")] > 0, m
    fig = pd.read_csv(built / "results/figures/uisps_fig3.csv")
    gen = fig[fig.kind == "generated"]
    assert set(gen["run"]) == {"uisps_tiny"} and len(gen) == 2 * INV["inv_samples"]
    assert set(gen["label"]) == {1, 2} and gen["nn_forget_share"].between(0, 1).all()
    assert gen["entropy_subset"].sum() == 2 * INV["inv_samples"] // 2
    assert (fig[fig.kind == "real"]["forget_class"]).any() and (built / "results/figures/uisps_fig3.png").stat().st_size > 0


def test_artefacts_per_class_shared_and_inside_the_declared_access(built):
    arts = built / "results/artefacts/tiny_digits/tiny_cnn/tiny/s0"
    inv = sorted(p.relative_to(arts).as_posix() for p in arts.rglob("class*.npz"))
    assert [p.split("/")[1] for p in inv] == ["class1.npz", "class2.npz"]  # one file per forgotten class
    assert len(list(arts.rglob("class*.png"))) == 2 and len(list(arts.rglob("class*.time.json"))) == 2
    # uisps_tiny and TTM + SPS share one importance file (same settings)
    imp = sorted(arts.rglob("importance_*.safetensors"))
    assert len(imp) == 1 and imp[0].with_name(imp[0].name.replace(".safetensors", ".time.json")).exists()
    runs = built / "results/runs/tiny_digits/tiny_cnn/tiny/s0/uisps_c1_2"
    info = {m: json.loads((runs / m / "unlearn.json").read_text()) for m in METHODS[2:]}
    assert info["uisps_tiny"]["access"] == "retain"                       # zero-glance: never the forget set
    assert info["uisps_tiny_ttm_sps"]["access"] == "forget+retain-subset (0.3)"
    assert info["uisps_tiny_ft_p50"]["access"] == "retain-subset (0.5)"
    a = info["uisps_tiny"]["info"]
    assert a["n_synthetic"] == 2 * INV["inv_samples"] and 0 < a["frozen_fraction"] < 1
    assert len(a["artefact_files"]["inversion"]) == 2 and len(a["artefact_files"]["importance"]) == 1
    assert info["uisps_tiny_ttm_sps"]["info"]["sps_base"] == "bad_teacher"
    assert 0 < info["uisps_tiny_ttm_sps"]["info"]["frozen_fraction"] < 1


def test_inversion_reads_no_data_and_importance_no_forget_set(built):
    inv = sorted((built / "results/artefacts").rglob("class1.npz"))[0].relative_to(built).as_posix()
    imp = sorted((built / "results/artefacts").rglob("importance_*.safetensors"))[0].relative_to(built).as_posix()
    out = run_snakemake(built, tiny_uisps_config(), [inv, imp], "-n", "--forceall").stdout
    (job,) = [j for j in _jobs(out, "make_inversion") if inv in j["output"]]
    assert job["input"].split(", ") == ["results/models/tiny_digits/tiny_cnn/tiny/s0/original.safetensors"], job
    (job,) = _jobs(out, "make_importance")
    ins = job["input"].split(", ")
    assert ins[0].endswith("original.safetensors") and sum(p.endswith(".npz") and "inversion_" in p for p in ins) == 2
    views = [p for p in ins if "/access/" in p]
    assert views == ["results/data/tiny_digits/access/uisps_c1_2/retain-p0.1-s0.npz"], ins
    assert not any(p.endswith(("data.npz", "split.json", "forget.npz")) for p in ins), ins


def test_changing_alpha_reuses_inversion_and_importance(built):
    out = run_snakemake(built, tiny_uisps_config(alpha=3.0), ["results/tables/uisps_table1.csv"], "-n").stdout
    assert _jobs(out, "unlearn") and not _jobs(out, "make_inversion") and not _jobs(out, "make_importance"), out[-3000:]


@pytest.mark.parametrize("overlay", [False, True])
def test_every_uisps_target_dry_runs(tmp_path, overlay):
    """The paper's own config: every table, figure and tuning entry builds a DAG (default: digits;
    overlay: CIFAR-10 / SVHN / CIFAR-100). The test config only sets the device."""
    cfg = {"device": "cpu"}
    if overlay:  # one --configfile only (a second flag would replace the first): merge the overlay in
        cfg = {**yaml.safe_load((REPO / "workflow/papers/uisps/full.yaml").read_text()), **cfg}
    targets = ["results/papers/uisps.md", "results/tuning/uisps_tune.json", "results/tuning/uisps_tune_ac.json"]
    env = None
    if overlay:  # the entries move to CIFAR: the digits lock does not hold, and the build says how to derive them
        proc = run_snakemake(tmp_path, cfg, targets, "-n", check=False)
        assert proc.returncode != 0 and "retune uisps_tune" in proc.stdout + proc.stderr
        env = {"UNLEARNBENCH_UNLOCKED": "1"}
    out = run_snakemake(tmp_path, cfg, targets, "-n", env=env).stdout
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", out.split("Job stats:")[-1], re.M))
    for rule in ("make_inversion", "make_importance", "make_noise", "tune", "unlearn", "report_study", "report_figure"):
        assert int(stats.get(rule, 0)) > 0, (rule, stats)
    assert int(stats["report_study"]) == (15 if overlay else 13)
