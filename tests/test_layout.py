"""The shape of the house: a clean linter, a torch-free DAG, code by kind, papers as folders."""

import os
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, SNAKEMAKE

LIB = REPO / "workflow" / "unlearnbench"


def _snakemake(*args, env=None):
    return subprocess.run([SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(REPO), *args],
                          capture_output=True, text=True, env={**os.environ, **(env or {})})


@pytest.mark.integration
def test_snakemake_lint_is_clean():
    proc = _snakemake("--lint")
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout + proc.stderr, proc.stdout[-3000:]


@pytest.mark.integration
def test_building_the_dag_of_every_paper_does_not_import_torch():
    papers = sorted(p.name for p in (REPO / "workflow" / "papers").iterdir() if (p / "study.yaml").exists())
    proc = _snakemake("-n", "--nolock", *[f"results/papers/{p}.md" for p in papers],
                      env={"UNLEARNBENCH_ASSERT_NO_TORCH": "1"})
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]


def test_library_is_organised_by_kind_not_by_paper():
    papers = [p.name for p in (REPO / "workflow" / "papers").iterdir() if p.is_dir()]
    top = sorted(p.stem for p in LIB.glob("*.py"))
    assert not [m for m in top if any(m.startswith(p) for p in papers)], top
    assert {"methods", "parts", "metrics", "report", "models"} <= {p.name for p in LIB.iterdir() if p.is_dir()}


def test_every_paper_is_one_folder_of_config_and_prose():
    for folder in (REPO / "workflow" / "papers").iterdir():
        if not folder.is_dir():
            continue
        names = {p.name for p in folder.iterdir() if not p.name.startswith(".")}
        assert {"study.yaml", "full.yaml", "README.md"} <= names, folder
        assert not [n for n in names if n.endswith(".py")], folder  # code lives with its kind
        assert names <= {"study.yaml", "study.lock.yaml", "full.yaml", "full.lock.yaml", "README.md", "rules.smk"}, (folder, names)


def test_every_rule_has_a_script_named_after_it():
    import re

    rules = []
    for smk in (REPO / "workflow" / "rules").rglob("*.smk"):
        rules += re.findall(r"^(?:rule|checkpoint) (\w+):", smk.read_text(), flags=re.M)
    scripts = {p.stem for p in (REPO / "workflow" / "scripts").glob("*.py")}
    assert rules and set(rules) <= scripts, sorted(set(rules) - scripts)
