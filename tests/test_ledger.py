"""The settings ledger reads our values from the config and the locks, never from the ledger entry."""

from __future__ import annotations

import csv
import pytest

from unlearnbench.errors import UserError
from unlearnbench.report.ledger import ledger_rows, lookup, render, write_ledger
from unlearnbench.tuning import fingerprint, write_lock

CONFIG = {
    "datasets": {"d": {"source": "digits"}}, "models": {"m": {"arch": "smallcnn"}}, "training": {"t": {"epochs": 3}},
    "scenarios": {"tune": {"type": "class", "classes": [5]}},
    "methods": {"ft": {"method": "finetune", "lr": 0.05, "tune": "e"}, "ft_px": {"method": "finetune", "epochs": 7}},
    "tuning": {"e": {"dataset": "d", "model": "m", "training": "t", "scenario": "tune", "seed": [1, 2, 3],
                     "methods": {"ft": {"lr": [0.01, 0.1]}}}},
}


def _locked(tmp_path, chosen):
    lock = tmp_path / "study.lock.yaml"
    write_lock(lock, {"e": {"fingerprint": fingerprint(CONFIG, "e"), "chosen": {"ft": chosen}}})
    return {"e": lock}


def test_a_method_key_reads_the_instance_then_the_method_default():
    from unlearnbench.methods import get_method

    assert lookup(CONFIG, "methods.ft_px.epochs") == "7"
    assert lookup(CONFIG, "methods.ft_px.lr") == f"{get_method('finetune').defaults['lr']:g}"  # the default
    assert lookup(CONFIG, "training.t.epochs") == "3" and lookup(CONFIG, "training.t.nope") == "–"
    assert lookup(CONFIG, "methods.absent.lr") == "–"
    config = {**CONFIG, "models": {"m": {"arch": "resnet20"}, "m_s95": {"base": "m", "prune": {"sparsity": 0.95}}}}
    assert lookup(config, "models.m.width") == lookup(config, "models.m_s95.width") == "16"  # the architecture's default
    assert lookup(config, "models.m_s95.prune.sparsity") == "0.95"
    with pytest.raises(UserError, match="no hyperparameter 'lrr'"):
        lookup(CONFIG, "methods.ft.lrr")
    from unlearnbench.report.ledger import check_ledgers

    bad = {**CONFIG, "papers": {"p": {"studies": [], "ledger": [{"setting": "FT lr", "paper": "x", "exact": "methods.ft.lrr"}]}}}
    with pytest.raises(UserError, match=r"papers.p.ledger \(FT lr\): .*no hyperparameter 'lrr'"):
        check_ledgers(bad)


def test_a_tuned_key_reads_the_lock_of_each_entry(tmp_path):
    homes = _locked(tmp_path, {"lr": 0.1})
    assert lookup(CONFIG, "methods.ft.lr", homes, tuned=True) == "0.1 (e)"
    assert lookup(CONFIG, "methods.ft.lr") == "0.05"  # untuned reading: the config value
    assert lookup(CONFIG, "methods.ft.epochs", homes, tuned=True) == "5"  # no entry tunes it: the method default
    with pytest.raises(UserError, match="no locked values"):
        lookup(CONFIG, "methods.ft.lr", {}, tuned=True)


def test_the_ledger_writes_one_row_per_entry(tmp_path):
    homes = _locked(tmp_path, {"lr": 0.01})
    config = {**CONFIG, "papers": {"p": {"studies": ["s"], "ledger": [
        {"setting": "FT: learning rate", "paper": "0.02 (Sec. 4)", "exact": "methods.ft_px.lr", "tuned": "methods.ft.lr",
         "why": "tuned on a cell | no table reports"},
        {"setting": "FT: epochs", "paper": "not stated", "code": "5 (main.py)", "exact": "methods.ft_px.epochs"}]}}}
    rows = ledger_rows(config, "p", homes)
    assert [r["tuned (ours)"] for r in rows] == ["0.01 (e)", "–"]
    assert rows[0]["code"] == "no public code" and rows[1]["code"] == "5 (main.py)"
    write_ledger("P", rows, str(tmp_path / "l.csv"), str(tmp_path / "l.md"))
    assert len(list(csv.DictReader(open(tmp_path / "l.csv")))) == 2
    md = (tmp_path / "l.md").read_text()
    assert "| FT: epochs | not stated | 5 (main.py) | 7 |" in md and "cell \\| no table" in md
    assert render("P", rows).startswith("# P: settings ledger")
    with pytest.raises(UserError, match="lists no ledger"):
        ledger_rows({"papers": {"q": {"studies": ["s"]}}}, "q")


@pytest.mark.integration
def test_every_paper_ledger_builds_from_its_config(tmp_path):
    """The five ledgers build from the default config and its locks, one row per entry, every path resolved."""
    import yaml

    from conftest import REPO, run_snakemake

    papers = ["clue", "unsir", "mugan", "dau", "uisps"]
    run_snakemake(tmp_path, {"device": "cpu"}, [f"results/papers/{p}.ledger.md" for p in papers])
    for p in papers:
        entries = yaml.safe_load((REPO / f"workflow/papers/{p}/study.yaml").read_text())["papers"][p]["ledger"]
        rows = list(csv.DictReader(open(tmp_path / f"results/papers/{p}.ledger.csv")))
        assert [r["setting"] for r in rows] == [e["setting"] for e in entries]
        assert all(r["paper-exact (ours)"] != "–" for r, e in zip(rows, entries) if e.get("exact")), p
        assert all(r["tuned (ours)"] != "–" for r, e in zip(rows, entries) if e.get("tuned")), p
