"""End-to-end: the Snakemake DAG on a tiny digits config, reruns, and one-line errors."""

import json
import re

import pandas as pd
import pytest

from conftest import run_snakemake

pytestmark = pytest.mark.integration

METHODS = ["original", "retrain", "finetune", "gradient_ascent", "random_labels"]
TARGET = "results/tables/tiny.csv"


def _job_counts(stdout: str) -> dict[str, int]:
    """Parse Snakemake's 'Job stats' table of a dry run."""
    counts, in_table = {}, False
    for line in stdout.splitlines():
        if line.startswith("job ") and "count" in line:
            in_table = True
            continue
        if in_table:
            m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
            if m and m.group(1) != "total":
                counts[m.group(1)] = int(m.group(2))
            elif line.strip().startswith("total"):
                break
    return counts


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from conftest import TINY_CONFIG

    cfg = json.loads(json.dumps(TINY_CONFIG))
    cfg["studies"] = {"tiny": {"title": "tiny", "dataset": "tiny_digits", "model": "tiny_cnn", "training": "tiny",
                               "scenarios": ["class0"], "methods": METHODS, "seeds": [0], "timing_repeats": 2}}
    work = tmp_path_factory.mktemp("wf")
    run_snakemake(work, cfg, [TARGET])
    return work, cfg


def test_table_has_every_method_and_forgetting_is_visible(tiny_run):
    work, _ = tiny_run
    t = pd.read_csv(work / TARGET)
    assert set(t["method"]) == set(METHODS) | {"retrain_indep"}  # + the noise-floor row
    for m in ("acc_forget", "acc_retain", "acc_test_retain", "acc_test_forget", "mia_svc_efficacy",
              "mia_entropy_lr", "mia_prob_lr", "mia_sm_correctness", "mia_sm_confidence", "mia_sm_entropy",
              "mia_sm_mentropy", "js_forget_pred", "dist_original", "dist_retrain", "avg_gap"):
        assert m in set(t["metric"]), m
    assert not {"time_s", "peak_mem_mb", "speedup"} & set(t["metric"])  # timings live in the cost sidecar
    v = t.set_index(["method", "metric"])
    assert v.loc[("retrain", "acc_forget"), "mean"] < 5           # the gold model never saw class 0
    assert v.loc[("original", "acc_forget"), "mean"] > 80         # the original did
    assert v.loc[("retrain", "acc_test_retain"), "mean"] > 70
    assert v.loc[("original", "dist_original"), "mean"] == 0 and v.loc[("retrain", "dist_retrain"), "mean"] == 0
    assert v.loc[("retrain_indep", "dist_retrain"), "mean"] > 0  # an independent gold model
    assert v.loc[("original", "acc_forget"), "gap_mean"] > 80 and v.loc[("original", "avg_gap"), "mean"] > 20
    cost = pd.read_csv(work / "results/tables/tiny.cost.csv").set_index(["method", "metric"])["mean"]
    assert cost[("retrain", "time_s")] > 0 and cost[("finetune", "time_s")] > 0
    # timing_repeats: 2 -> the step time is the median of two timings of the same unlearning run
    rep = json.loads((work / "results/runs/tiny_digits/tiny_cnn/tiny/s0/class0/finetune/timing_r2.time.json").read_text())
    assert len(rep["repeats"]) == 2 and cost[("finetune", "time_step_s")] == pytest.approx(rep["seconds_median"], rel=1e-3)
    for f in ("results/tables/tiny.md", "results/tables/tiny.tex", "results/figures/tiny.png"):
        assert (work / f).stat().st_size > 100
    md = (work / "results/tables/tiny.md").read_text()
    assert "forget" in md and "retain (retrain from scratch)" in md  # access column
    assert "n = 1: single runs" in md  # one seed: the caption says so
    run_dir = work / "results/runs/tiny_digits/tiny_cnn/tiny/s0/class0/finetune"
    assert {"model.safetensors", "model.time.json", "unlearn.json", "outputs.npz", "metrics.json", "mia.npz"} <= {
        p.name for p in run_dir.iterdir()}


def test_second_run_is_a_noop(tiny_run):
    work, cfg = tiny_run
    proc = run_snakemake(work, cfg, [TARGET], "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_the_same_settings_in_another_order_rerun_nothing(tiny_run):
    work, cfg = tiny_run
    cfg = json.loads(json.dumps(cfg))
    cfg["training"]["tiny"] = dict(reversed(list(cfg["training"]["tiny"].items())))
    cfg["methods"]["finetune"] = {"tune": None, "epochs": 5, "method": "finetune"}  # config.yaml's, reordered
    proc = run_snakemake(work, cfg, [TARGET], "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout[-2000:]


def test_changing_one_method_reruns_only_that_method(tiny_run):
    work, cfg = tiny_run
    cfg = json.loads(json.dumps(cfg))
    cfg["methods"]["finetune"] = {"method": "finetune", "lr": 0.03, "epochs": 5, "tune": None}
    proc = run_snakemake(work, cfg, [TARGET], "-n")
    counts = _job_counts(proc.stdout)
    # its unlearning, its repeated timing (timing_repeats: 2), its evaluation and the table
    assert counts == {"unlearn": 1, "time_unlearn": 1, "evaluate": 1, "report_study": 1}, proc.stdout[-3000:]
    assert "class0/finetune/model.safetensors" in proc.stdout
    assert "output: results/runs/tiny_digits/tiny_cnn/tiny/s0/class0/gradient_ascent" not in proc.stdout


@pytest.mark.parametrize("overlay,message", [
    ({"bogus": 1}, "config error at (top level): Additional properties are not allowed ('bogus' was unexpected)"),
    ({"methods": {"finetune": {"method": "finetune", "lrr": 1}}}, "has no hyperparameter 'lrr'"),
    ({"methods": {"x": {"method": "nonexistent"}}}, "unknown unlearning method 'nonexistent'"),
    ({"scenarios": {"class0": {"type": "class", "classes": [12]}}}, "forget class 12 is out of range"),
    ({"models": {"m": {"arch": "resnet9000"}}}, "unknown arch 'resnet9000'"),
    ({"training": {"digits": {"lr": "fast"}}}, "config error at training.digits.lr"),
    ({"studies": {"s": {"dataset": "digits", "model": "resnet20", "training": "digits", "scenarios": ["class0"],
                        "methods": ["original"], "seeds": [0]}}}, "must include a 'retrain' instance"),
])
def test_bad_config_gives_one_line_error(tmp_path, overlay, message):
    proc = run_snakemake(tmp_path, overlay, [], "-n", check=False)
    assert proc.returncode != 0
    err_lines = [l for l in proc.stderr.splitlines() if l.startswith("config error")]
    assert len(err_lines) == 1 and message in err_lines[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "results").exists()


def test_missing_dataset_fails_cleanly_without_output(tmp_path):
    cfg = {"data_root": str(tmp_path / "nodata"),
           "studies": {"c": {"dataset": "cifar10", "model": "resnet20", "training": "digits",
                             "scenarios": ["class0"], "methods": ["original", "retrain"], "seeds": [0]}}}
    proc = run_snakemake(tmp_path, cfg, ["results/data/cifar10/data.npz"], check=False)
    assert proc.returncode != 0
    assert "error in rule prepare_dataset: cifar10 not found under" in proc.stderr
    assert not (tmp_path / "results/data/cifar10/data.npz").exists()


def test_snakemake_report_of_a_study(tiny_run):
    work, cfg = tiny_run
    proc = run_snakemake(work, cfg, [TARGET], "--report", str(work / "report.html"))
    html = (work / "report.html").read_text(errors="replace")
    assert "tiny.cost.csv" in html and "train_original" in html, proc.stderr[-2000:]
