"""Environment files cannot drift, and the audit names what changed."""

import copy
import json

import pytest

from conftest import REPO, TINY_CONFIG, run_snakemake
from unlearnbench.infra.audit import check_environment, conda_pins, lock_pins, requirement_pins, run_audit

DRIVER_ONLY = {"snakemake", "snakemake-executor-plugin-slurm", "pytest", "pytest-xdist"}


def test_conda_env_pins_equal_requirements():
    req, conda = requirement_pins(REPO), conda_pins(REPO)
    assert {k: v for k, v in req.items() if k not in DRIVER_ONLY} == conda


def test_lock_contains_every_requirement_at_its_pin():
    lock = lock_pins(REPO)
    assert len(lock) > 50  # every transitive package, not only the top-level pins
    assert {k: lock.get(k) for k in requirement_pins(REPO)} == requirement_pins(REPO)
    assert "torch build:" in (REPO / "requirements.lock").read_text()  # the CUDA variant is recorded


def test_environment_audit_finds_drift(tmp_path):
    repo = tmp_path / "repo"
    (repo / "envs").mkdir(parents=True)
    (repo / "requirements.txt").write_text("numpy==2.4.6\ntorch==2.15.0\n")
    (repo / "envs/unlearnbench.yaml").write_text("dependencies:\n  - pip:\n      - numpy==2.4.5\n      - torch==2.15.0\n")
    (repo / "requirements.lock").write_text("numpy==2.4.6\ntorch==2.15.0\nnot-a-real-package==1.0\n")
    kinds = {(f["kind"], f.get("package")) for f in check_environment(repo)}
    assert ("pin drift", "numpy") in kinds and ("not installed", "not-a-real-package") in kinds


@pytest.mark.integration
def test_artefact_audit_names_an_edited_version_and_a_changed_input(tmp_path, capsys):
    cfg = copy.deepcopy(TINY_CONFIG)
    cfg["training"]["tiny"]["epochs"] = 2
    cfg["studies"] = {"tiny": {"dataset": "tiny_digits", "model": "tiny_cnn", "training": "tiny", "scenarios": ["class0"],
                               "methods": ["original", "retrain"], "seeds": [0], "noise_floor": False}}
    run_snakemake(tmp_path, cfg, ["results/tables/tiny.csv"])
    provs = sorted((tmp_path / "results").rglob("*.prov.json"))
    assert provs, "no provenance sidecars written"
    rec = json.loads(provs[0].read_text())
    assert {"git", "versions", "environment_hash", "backend", "host", "inputs", "outputs", "params_hash"} <= set(rec)
    assert {"python", "torch", "torchvision", "timm", "numpy", "scikit-learn", "snakemake"} <= set(rec["versions"])
    # the untouched tree audits clean for the artefacts
    assert not [f for f in _audit(tmp_path) if f["kind"] not in ("lock drift", "installed version differs", "not installed",
                                                                 "no lock", "pin drift")]
    # edit one recorded version: the audit names the artefact and the package
    target = next(p for p in provs if "train_original" == json.loads(p.read_text())["rule"])
    rec = json.loads(target.read_text())
    rec["versions"]["torch"] = "0.0.1"
    rec["wall"] = {"enforced": False, "why": "no Landlock (kernel 5.10)"}  # as a job on a kernel without it records
    target.write_text(json.dumps(rec))
    # and change an input after the fact
    split = tmp_path / "results/data/tiny_digits/split.json"
    split.write_text(split.read_text().replace(" ", ""))
    found = _audit(tmp_path)
    assert any(f["kind"] == "made by another version" and f["package"] == "torch" and f["recorded"] == "0.0.1"
               for f in found)
    assert any(f["kind"] == "input changed since" and f["file"].endswith("split.json") for f in found)
    assert any(f["kind"] == "access declared, not enforced" and "no Landlock" in f["why"] for f in found)
    assert run_audit(str(tmp_path / "results"), str(tmp_path / "audit.json")) == 1
    assert "made by another version" in capsys.readouterr().out
    assert json.loads((tmp_path / "audit.json").read_text())["counts"]["made by another version"] == 1


def _audit(work):
    from unlearnbench.infra.audit import check_artefacts

    return check_artefacts(work / "results")[0]
