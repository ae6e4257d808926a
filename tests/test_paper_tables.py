"""Paper tables of declarations (report/paper_tables.py, rule report_paper_table): the data-access
table is generated from the methods' declared access() and the parameter table from the model
registry, never typed; the rule plans them for the MuGAN page and refuses a name a study already has."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from conftest import TINY_CONFIG, run_snakemake
from unlearnbench.io import write_npz
from unlearnbench.methods import create_method
from unlearnbench.models import build_model
from unlearnbench.models._registry import model_defaults
from unlearnbench.errors import UserError
from unlearnbench.report.paper_specs import paper_tables, table_data, table_facts
from unlearnbench.report.paper_tables import access_table, count_parameters, param_table, write_paper_table

SPECS = {
    "original": {"method": "original"},
    "ft_a": {"method": "finetune", "tune": "x"},
    "ft_b": {"method": "finetune", "lr": 0.1},
    "sc": {"method": "scrub"},
    "un": {"method": "unsir", "retain_per_class": 5},
    "zm": {"method": "zmugan"},
    "mg": {"method": "mugan"},
    "bt": {"method": "bad_teacher"},
}


def test_access_rows_are_the_declared_access_grouped_by_method():
    csv, show = access_table(SPECS, paper={"scrub": "D_f, D_r"})
    assert list(csv["method"]) == ["finetune", "scrub", "unsir", "zmugan", "mugan", "bad_teacher"]  # first appearance
    assert "original" not in set(csv["method"])  # reference rows only when asked
    row = csv.set_index("method")
    assert row.loc["finetune", "instances"] == "ft_a ft_b"  # the same method and access: one row
    for name, spec in SPECS.items():
        m = create_method(spec)
        if m.kind == "reference":
            continue
        a = m.access()
        r = row.loc[m.name]
        assert (r["forget"], r["val"], r["access"], r["artefacts"]) == (a.forget, a.val, a.label, ", ".join(m.needs()))
        assert r["reads_data"] == bool(a.forget or a.retain or a.val)
    assert row.loc["scrub", "retain"] == "all" and row.loc["bad_teacher", "retain"].startswith("subset")
    assert row.loc["unsir", "retain"] == "subset (5 per class)" and row.loc["unsir", "artefacts"] == "noise"
    assert row.loc["zmugan", "retain"] == "–" and not row.loc["zmugan", "reads_data"]
    assert row.loc["mugan", "access"] == "generator (no real data)" and "gan" in row.loc["mugan", "artefacts"]
    assert row.loc["scrub", "paper"] == "D_f, D_r" and row.loc["unsir", "paper"] == "(not in the paper's table)"
    shown = show.set_index("Method")
    assert shown.loc["scrub", "Forget set (D_f)"] == "✓" and shown.loc["finetune", "Forget set (D_f)"] == "–"
    assert shown.loc["finetune", "Instances"] == "`ft_a`, `ft_b`"
    with_ref, _ = access_table(SPECS, include_reference=True)
    assert with_ref["method"].iloc[0] == "original"


def test_access_rows_follow_a_hyperparameter_that_changes_the_access():
    csv, _ = access_table({"a": {"method": "amnesiac", "repair_steps": 0}, "b": {"method": "amnesiac", "repair_steps": 5}})
    assert list(csv["access"]) == ["update log (no data)", "retain"] and list(csv["instances"]) == ["a", "b"]


def test_parameter_counts_are_those_of_the_built_model():
    for spec, shape in (({"arch": "vgg16_bn", "width_mult": 0.125}, (3, 16)), ({"arch": "allcnn", "width": 8}, (1, 12)),
                        ({"arch": "resnet20", "width": 4}, (3, 8)),
                        ({"arch": "vit", "patch_size": 4, "embed_dim": 16, "depth": 1, "num_heads": 2}, (3, 8))):
        model = build_model(spec["arch"], in_channels=shape[0], num_classes=7, image_size=shape[1],
                            **{k: v for k, v in spec.items() if k != "arch"})
        want = sum(p.numel() for p in model.parameters())
        assert count_parameters(spec, shape[0], shape[1], 7) == (want, want), spec
    # the thesis' VGG16 (Table 2: 14,728,266) has biased convolutions; the registry's are bias-free
    # before BatchNorm: 4,224 conv biases fewer
    assert count_parameters({"arch": "vgg16_bn"}, 3, 32, 10)[0] == 14_728_266 - 4_224


def test_parameter_rows_dedupe_pairs_and_show_the_paper_per_arch():
    models = {"narrow": {"arch": "allcnn", "width": 8}, "wide": {"arch": "allcnn", "width": 96},
              "sparse": {"arch": "allcnn", "width": 8, "sparsity": 0.95}}
    datasets = {"d16": {"source": "digits", "image_size": 16, "channels": 3, "num_classes": 10},
                "d16b": {"source": "digits", "image_size": 16, "channels": 3, "num_classes": 10},
                "c32": {"source": "cifar10", "image_size": 32, "channels": 3, "num_classes": 10}}
    pairs = [{"model": "narrow", "dataset": "d16", "studies": ["s1"]}, {"model": "narrow", "dataset": "d16b", "studies": ["s2"]},
             {"model": "sparse", "dataset": "d16", "studies": ["s3"]}, {"model": "wide", "dataset": "c32", "studies": []}]
    csv, show = param_table(models, datasets, pairs, paper={"allcnn": 1_620_010})
    assert list(csv["model"]) == ["narrow", "sparse", "wide"]
    narrow = csv.iloc[0]
    assert narrow["datasets"] == "d16 d16b" and narrow["studies"] == "s1 s2" and narrow["input"] == "3×16×16"
    assert csv.iloc[1]["params_trainable"] == narrow["params_trainable"]  # pruning zeroes weights, it removes none
    assert list(show["Pruned"]) == ["–", "0.95 of the weights zero", "–"]
    assert list(show["Used by"]) == ["s1, s2", "s3", "– (named by the table)"]
    defaults = model_defaults("allcnn")  # every argument shown, the registry's defaults filled in
    assert csv.iloc[2]["arguments"] == "allcnn(" + ", ".join(f"{k}={v}" for k, v in {**defaults, "width": 96}.items()) + ")"
    assert set(show["Paper"]) == {"1,620,010"}


def test_write_paper_table_renders_csv_and_markdown(tmp_path):
    spec = {"kind": "params", "title": "Table 2: parameters", "studies": ["s"],
            "options": {"paper": {"smallcnn": 1}, "paper_note": "the paper's count"}}
    # an ImageFolder's class count is known once its archive is prepared
    write_npz(tmp_path / "data.npz", x=np.zeros((2, 1, 8, 8), np.uint8), y=np.zeros(2, np.int64),
              class_names=np.asarray(["a", "b", "c"]))
    facts = {"models": {"m": {"arch": "smallcnn", "width": 4}},
             "datasets": {"faces": {"source": "imagefolder", "image_size": 8, "channels": 1, "num_classes": None}},
             "pairs": [{"model": "m", "dataset": "faces", "studies": ["s"]}]}
    write_paper_table("t2", spec, facts, str(tmp_path / "t2.csv"), str(tmp_path / "t2.md"),
                      data_files={"faces": str(tmp_path / "data.npz")})
    df = pd.read_csv(tmp_path / "t2.csv")
    want = sum(p.numel() for p in build_model("smallcnn", in_channels=1, num_classes=3, image_size=8, width=4).parameters())
    assert df.loc[0, "table"] == "t2" and df.loc[0, "num_classes"] == 3 and df.loc[0, "params_trainable"] == want
    md = (tmp_path / "t2.md").read_text()
    assert md.startswith("# Table 2: parameters\n") and "| Model |" in md and "Paper: the paper's count." in md
    assert "Provenance: commit" in md
    with pytest.raises(Exception, match="no known class count"):
        write_paper_table("t2", spec, facts, str(tmp_path / "x.csv"), str(tmp_path / "x.md"))


def _config():
    return {
        "datasets": {"d16": {"source": "digits", "image_size": 16, "channels": 3}, "c10": {"source": "cifar10", "image_size": 32, "channels": 3},
                     "faces": {"source": "imagefolder", "path": "f", "image_size": 8, "channels": 1}},
        "models": {"small": {"arch": "allcnn", "width": 8}, "sparse": {"base": "small", "prune": {"sparsity": 0.9}},
                   "wide": {"arch": "allcnn"}},
        "methods": {"original": {"method": "original"}, "ft": {"method": "finetune"}, "sc": {"method": "scrub"}},
        "studies": {"s1": {"dataset": "d16", "model": "small", "training": "t", "methods": ["original", "ft"]},
                    "s2": {"setups": [{"dataset": "d16", "model": "sparse", "training": "t"},
                                      {"dataset": "faces", "model": "small", "training": "t"}], "methods": ["sc", "ft"]}},
        "papers": {"p": {"studies": ["s1"], "tables": {
            "p_t1": {"kind": "access", "studies": ["s1", "s2"]},
            "p_t2": {"kind": "params", "studies": ["s1", "s2"], "options": {"models": ["wide"], "datasets": ["c10"]}}}}},
    }


def test_the_config_side_resolves_instances_models_and_input_sizes():
    cfg = _config()
    tables = paper_tables(cfg)
    assert list(tables) == ["p_t1", "p_t2"]
    assert list(table_facts(cfg, tables["p_t1"])["methods"]) == ["original", "ft", "sc"]  # first appearance
    facts = table_facts(cfg, tables["p_t2"])
    assert [(p["model"], p["dataset"], p["studies"]) for p in facts["pairs"]] == [
        ("small", "d16", ["s1"]), ("sparse", "d16", ["s2"]), ("small", "faces", ["s2"]),
        ("small", "c10", []), ("sparse", "c10", []), ("wide", "c10", [])]
    assert facts["models"]["sparse"] == {"arch": "allcnn", "width": 8, "sparsity": 0.9}  # the base's architecture
    assert facts["datasets"]["c10"] == {"source": "cifar10", "image_size": 32, "channels": 3, "num_classes": 10}
    assert facts["datasets"]["faces"]["num_classes"] is None  # known once the archive is prepared
    assert table_data(cfg, tables["p_t2"], "results") == {"faces": "results/data/faces/data.npz"}
    assert table_data(cfg, tables["p_t1"]) == {}


@pytest.mark.parametrize("change, message", [
    (lambda c: c["papers"]["p"]["tables"].update(s1={"kind": "access", "studies": ["s1"]}), "p.tables.s1: the name 's1' is already a study"),
    (lambda c: c["papers"].update(q={"studies": ["s1"], "tables": {"p_t1": {"kind": "access", "studies": ["s1"]}}}),
     "q.tables.p_t1: the name 'p_t1' is already a table of another paper"),
    (lambda c: c["papers"]["p"]["tables"]["p_t1"].update(studies=["nope"]), "p.tables.p_t1: unknown study 'nope'"),
    (lambda c: c["papers"]["p"]["tables"]["p_t2"]["options"].update(datasets=["svhn"]), "p.tables.p_t2.options.datasets: unknown dataset 'svhn'"),
])
def test_a_bad_table_entry_is_one_line(change, message):
    cfg = _config()
    change(cfg)
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        paper_tables(cfg)


@pytest.mark.integration
def test_the_mugan_page_plans_tables_1_and_2_and_a_clashing_name_is_refused(tmp_path):
    proc = run_snakemake(tmp_path / "ok", {"device": "cpu"}, ["results/papers/mugan.md"], "-n")
    out = proc.stdout
    assert "rule report_paper_table:" in out
    for t in ("mugan_table1", "mugan_table2"):
        assert f"output: results/tables/{t}.csv, results/tables/{t}.md" in out, t
    page_inputs = out.split("rule report_paper:")[1].split("output:")[0]
    assert page_inputs.index("mugan_table1.md") < page_inputs.index("mugan_table2.md") < page_inputs.index("mugan_table3.md")
    cfg = copy.deepcopy(TINY_CONFIG)
    cfg["papers"] = {"mugan": {"tables": {"mugan_table3": {"kind": "access", "studies": ["mugan_table3"]}}}}
    bad = run_snakemake(tmp_path / "clash", cfg, ["results/papers/mugan.md"], "-n", check=False)
    assert bad.returncode != 0
    assert "config error: papers.mugan.tables.mugan_table3: the name 'mugan_table3' is already a study" in bad.stdout + bad.stderr
    cfg["papers"] = {"mugan": {"tables": {"mugan_table2": {"options": {"models": ["no_such_model"]}}}}}
    bad = run_snakemake(tmp_path / "unknown", cfg, ["results/papers/mugan.md"], "-n", check=False)
    assert "config error: papers.mugan.tables.mugan_table2.options.models: unknown model 'no_such_model'" in bad.stdout + bad.stderr
