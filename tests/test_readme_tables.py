"""benchmarks/readme_tables.py: README blocks are rendered from the benchmark records, headed by the
machine, its load before the run and the numerics mode; a block without its record is a one-line error."""

import importlib.util
import json

import pytest

from conftest import REPO


def _module(out):
    spec = importlib.util.spec_from_file_location("readme_tables", REPO / "benchmarks" / "readme_tables.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.OUT = out
    return mod


def _record(name, cold):
    return {"name": name, "targets": ["results/tables/table1.csv"], "cores": 2, "cold_s": cold, "compute_s": 300.0,
            "jobs": 94, "compute_by_stage_s": {"train": 250.0, "unlearn": 50.0}, "ratio": 1.2, "noop_s": 1.6,
            "job_work_s": 350.0, "ratio_job_work": 1.1,
            "noop_bootstrap_s": 0.05, "startup_s": 1.0, "load_before": [0.1, 0.52, 1.0], "numerics": "portable",
            "machine": {"cpu": "AMD EPYC 9R14", "cpu_count": 2}, "commit": "abc1234", "date": "2026-12-04"}


def test_blocks_are_rendered_from_the_records(tmp_path):
    mod = _module(tmp_path)
    (tmp_path / "table1.json").write_text(json.dumps(_record("table1", 201.7)))
    work = tmp_path / "work_table1" / "cold_tables"
    work.mkdir(parents=True)
    (work / "table1.md").write_text("# table1\n\n| Method | UA |\n|---|---|\n| finetune | 0.00 ± 0.00 |\n"
                                    "Provenance: x\n")
    (tmp_path / "numerics.json").write_text(json.dumps({
        "modes": {"portable": _record("table1_portable", 210.0), "native": _record("table1_native", 200.0)},
        "ratio_cold": 1.05, "ratio_compute": 1.04, "machine": {"cpu": "AMD EPYC 9R14", "cpu_count": 2},
        "commit": "abc1234", "date": "2026-12-04"}))
    study = mod.block("table1", "table1")
    assert "AMD EPYC 9R14" in study and "0.10, 0.52, 1.00" in study and "numerics portable" in study
    assert "| finetune | 0.00 ± 0.00 |" in study and "Provenance" not in study
    cost = mod.block("cost", "table1")
    assert "| table1 (`results/tables/table1.csv`) | 94 | 0.10/0.52/1.00 | 202 | 300 | 250 | 125 |" in cost
    assert "cold 1.05" in mod.block("numerics", "")


def test_a_block_without_its_record_names_the_command(tmp_path):
    with pytest.raises(SystemExit, match="bootstrap.py bench --only mugan"):
        _module(tmp_path).block("cost", "mugan")


def test_the_wall_and_claims_blocks_come_from_their_records(tmp_path):
    mod = _module(tmp_path)
    mode = {**_record("table1_wall", 170.0), "wall_setup_s": {"n": 18, "median": 0.05, "max": 0.16}}
    (tmp_path / "wall.json").write_text(json.dumps({
        "modes": {"wall": mode, "no_wall": {**mode, "wall_setup_s": {"n": 0, "median": None, "max": None}}},
        "ratio_cold": 1.01, "job": "results/runs/x/finetune/model.safetensors", "job_repeats": 7,
        "job_median_s": {"wall": 3.2, "no_wall": 3.1}, "job_added_s": 0.1, "job_load_before": [0.5, 0.4, 0.3],
        "machine": {"cpu": "AMD EPYC", "cpu_count": 2, "platform": "Linux-6.18"}, "commit": "abc1234", "date": "2026-12-04"}))
    w = mod.block("wall", "")
    assert "+0.100 s per job" in w and "| wall | 94 | 0.10/0.52/1.00 | 170 | 18 | 0.05 / 0.16 |" in w and "Linux-6.18" in w
    (tmp_path / "dau.json").write_text(json.dumps({**_record("dau", 600.0),
                                                   "targets": ["results/papers/dau.md", "results/papers/dau.claims.md"]}))
    md = tmp_path / "work_dau" / "results" / "papers" / "dau.claims.md"
    md.parent.mkdir(parents=True)
    md.write_text("# DAU: headline claims\n\ncaption\n\n| Claim | Verdict |\n|---|---|\n| x | **reproduced** |\n")
    c = mod.block("claims", "dau")
    assert c.startswith("*Generated from the cold build of `results/papers/dau.md results/papers/dau.claims.md`") and "**reproduced**" in c
    assert "# DAU" not in c


def test_the_real_block_holds_the_claims_and_the_tables_of_one_cold_build(tmp_path):
    mod = _module(tmp_path)
    with pytest.raises(SystemExit, match="bootstrap.py bench --real --only uisps"):
        mod.block("real", "uisps")
    (tmp_path / "real_uisps.json").write_text(json.dumps({**_record("real_uisps", 2400.0), "configfile": "workflow/papers/uisps/real.yaml",
                                                          "targets": ["results/papers/uisps_real.claims.md"]}))
    work = tmp_path / "work_real_uisps"
    (work / "results" / "papers").mkdir(parents=True)
    (work / "results" / "papers" / "uisps_real.claims.md").write_text("# U: headline claims\n\n| Claim | Verdict |\n|---|---|\n| x | **inconclusive** |\n")
    (work / "cold_tables").mkdir()
    (work / "cold_tables" / "uisps_table1_real.md").write_text("# UISPS Table I on real data\n\n| Method | TA |\n|---|---|\n| original | 88.10 ± 0.20 |\n")
    r = mod.block("real", "uisps")
    assert "overlay `workflow/papers/uisps/real.yaml`" in r and "AMD EPYC 9R14, 2 cores" in r and "2400 s" in r
    assert "**inconclusive**" in r and "## UISPS Table I on real data" in r and "| original | 88.10 ± 0.20 |" in r


def test_a_cold_build_in_segments_says_so_with_each_segment_s_time_and_load(tmp_path):
    rec = {**_record("real_dau", 9000.0), "segments": [{"seconds": 4000.0, "load_before": [0.1, 0.2, 0.3]},
                                                       {"seconds": 5000.0, "load_before": [0.4, 0.5, 0.6]}]}
    h = _module(tmp_path).header(rec)
    assert "9000 s, in 2 segments of 4000 + 5000 s" in h and "0.10, 0.20, 0.30; 0.40, 0.50, 0.60" in h
    assert "commits" not in h  # segments of one pipeline (no commit recorded, or the same one)
    for seg, commit in zip(rec["segments"], ("f5caab8", "a79e596")):  # a build grown with bench --extend
        seg["commit"] = commit
    assert "built at commits f5caab8, a79e596 (bench --extend" in _module(tmp_path).header(rec)


def test_a_recipe_block_shows_every_epoch_count_with_its_machine_and_verdict(tmp_path):
    mod = _module(tmp_path)
    rows = [{"epochs": 15, "n": 3, "train_seconds_mean": 210.0, "val_acc_all": [89.4, 0.35], "svc_min": 0.5896,
             "best_attack_min": 0.5933, "meets": False},
            {"epochs": 20, "n": 3, "train_seconds_mean": 277.0, "val_acc_all": [89.6, 0.52], "svc_min": 0.61,
             "best_attack_min": 0.6207, "meets": True}]
    (tmp_path / "recipe_fashion.json").write_text(json.dumps({
        "commit": "abc1234", "tree_clean": True, "recipe": "fashion", "dataset": "fashion", "model": "resnet20",
        "scenario": "tune_c5", "seeds": [100, 101, 102], "judged_on": "validation split", "runs": [{}] * 6,
        "bars": {"attack_signal": 0.6, "accuracy": 88.0}, "summary": rows, "machine": {"cpu": "AMD EPYC 9R14", "cpu_count": 2},
        "load_before": [0.49, 0.93, 1.54], "wall_s": 1420.6, "numerics": "portable", "date": "2026-12-05 12:33"}))
    out = mod.block("recipe", "fashion")
    assert "commit abc1234 (2026-12-05 12:33)" in out and "0.49, 0.93, 1.54" in out and "6 originals in 1421 s" in out
    assert "| 15 | 3 | 210 | 89.40 ± 0.35 | 0.590 | 0.593 | no |" in out
    assert "| 20 | 3 | 277 | 89.60 ± 0.52 | 0.610 | 0.621 | yes |" in out
    with pytest.raises(SystemExit, match="recipe_signal.py --recipe other"):
        mod.block("recipe", "other")


def test_a_budget_block_judges_each_cold_build_and_their_sum(tmp_path):
    mod = _module(tmp_path)
    (tmp_path / "real_a.json").write_text(json.dumps(_record("real_a", 1800.0)))  # 30 min, training 250 s
    (tmp_path / "real_b.json").write_text(json.dumps({**_record("real_b", 5400.0),
                                                      "compute_by_stage_s": {"train": 6000.0}}))  # 90 min, floor 50
    text = mod.block("budget", "45 240 real_a real_b")
    assert "| real_a | abc1234 | AMD EPYC 9R14, 2 cores | 94 | 30.0 | within | 2.1 | within | 0.4 |" in text
    assert "| real_b | abc1234 | AMD EPYC 9R14, 2 cores | 94 | 90.0 | over (2.0x) | 50.0 | over (1.1x) | 0.0 |" in text
    assert "| all 2 | | | 188 | 120.0 | within (of 240) | 52.1 | within (of 240) | 0.4 |" in text
    with pytest.raises(SystemExit, match="budget <page min> <all min>"):
        mod.block("budget", "real_a")
