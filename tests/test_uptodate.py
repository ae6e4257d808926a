"""bootstrap.py's no-op fast path (unlearnbench/infra/uptodate.py): a recorded build answers "up to date"
only while nothing it could depend on changed; any edit, touch, new or removed file, other target,
environment variable or package install sends the call to Snakemake, and so does an edit made while
the build ran (what the build reads is stamped as it was when the build started)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from unlearnbench.infra import uptodate

TARGET = "results/tables/t.csv"


@pytest.fixture
def tree(tmp_path):
    repo, work, site = tmp_path / "repo", tmp_path / "work", tmp_path / "site"
    for p in (repo / "workflow" / "rules", work / "results" / "tables", site):
        p.mkdir(parents=True)
    (repo / "Snakefile").write_text("include: 'workflow/rules/a.smk'\n")
    (repo / "config.yaml").write_text("data_root: data\n")
    (repo / "workflow" / "rules" / "a.smk").write_text("rule a: ...\n")
    (work / TARGET).write_text("x\n")
    (work / "results" / "m.safetensors").write_bytes(b"w")
    uptodate.record(work, [TARGET], uptodate.inputs(work, repo, [TARGET], str(site)))
    assert uptodate.is_up_to_date(work, repo, [TARGET], str(site))
    return repo, work, site


def _later(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))


@pytest.mark.parametrize("change", ["edit rule", "touch artefact", "new artefact", "remove artefact", "new data file",
                                    "incomplete marker", "install package", "env var", "other target"])
def test_any_change_reaches_snakemake(tree, change, monkeypatch):
    repo, work, site = tree
    targets = [TARGET]
    if change == "edit rule":
        (repo / "workflow" / "rules" / "a.smk").write_text("rule a: changed\n")
    elif change == "touch artefact":
        _later(work / "results" / "m.safetensors")
    elif change == "new artefact":
        (work / "results" / "n.json").write_text("{}")
    elif change == "remove artefact":
        (work / "results" / "m.safetensors").unlink()
    elif change == "new data file":
        (work / "data").mkdir()
        (work / "data" / "x.bin").write_bytes(b"1")
    elif change == "incomplete marker":
        (work / ".snakemake" / "incomplete").mkdir(parents=True)
        (work / ".snakemake" / "incomplete" / "abc").write_text("")
    elif change == "install package":
        (site / "newpkg").mkdir()
    elif change == "env var":
        monkeypatch.setenv("UNLEARNBENCH_WARM", "0")
    elif change == "other target":
        targets = ["results/tables/t.md"]
        (work / targets[0]).write_text("y")
    assert uptodate.is_up_to_date(work, repo, targets, str(site)) is None


def test_only_calls_of_targets_alone_take_the_fast_path(monkeypatch):
    assert uptodate.split_args([TARGET]) == (None, [TARGET])
    assert uptodate.split_args(["--directory", "w", TARGET]) == (Path("w"), [TARGET])
    for args in ([], ["-n", TARGET], [TARGET, "--forcerun", "train_original"], ["--directory", "w"]):
        assert uptodate.split_args(args) is None, args
    monkeypatch.setenv("UNLEARNBENCH_UPTODATE", "0")
    assert uptodate.split_args([TARGET]) is None


def test_bootstrap_answers_a_recorded_build_at_once(tmp_path):
    """The real command: bootstrap.py run --directory W TARGET after a recorded build answers without
    Snakemake (benchmarks/ records how fast); after touching an artefact it hands over to Snakemake."""
    if not (REPO / ".venv" / "bin" / "snakemake").exists():
        pytest.skip("needs the bootstrap environment")
    work = tmp_path / "w"
    (work / "results" / "tables").mkdir(parents=True)
    (work / TARGET).write_text("x\n")
    site = next(iter(sorted((REPO / ".venv").glob("lib/python*/site-packages"))))
    uptodate.record(work, [TARGET], uptodate.inputs(work, REPO, [TARGET], str(site)))
    out = subprocess.run([sys.executable, str(REPO / "bootstrap.py"), "run", "--directory", str(work), TARGET],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "nothing to be done" in out.stdout, out
    _later(work / TARGET)
    out = subprocess.run([sys.executable, str(REPO / "bootstrap.py"), "run", "--directory", str(work), TARGET],
                         capture_output=True, text=True, timeout=300)
    assert "nothing to be done" not in out.stdout and "snakemake" in out.stdout, out


@pytest.mark.parametrize("edit", ["none", "working directory's config.yaml", "rule", "data root"])
def test_an_edit_made_while_the_build_runs_is_not_stamped_as_built(tree, monkeypatch, edit):
    """bootstrap.py's snakemake() on a scratch repository, Snakemake replaced by a build that writes its
    outputs and, the first time, meets an edit of something it reads: the next call builds again."""
    repo, work, _ = tree
    site = repo / ".venv" / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    spec = importlib.util.spec_from_file_location("bootstrap_under_test", REPO / "bootstrap.py")
    boot = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(boot)
    builds = []

    def build(cmd):
        (work / TARGET).write_text(f"build {len(builds)}\n")  # the build's own outputs are stamped as they end
        (work / "results" / f"log{len(builds)}.txt").write_text("log")
        if not builds and edit == "working directory's config.yaml":
            (work / "config.yaml").write_text("data_root: data\n")
        elif not builds and edit == "rule":
            (repo / "workflow" / "rules" / "a.smk").write_text("rule a: edited while it ran\n")
        elif not builds and edit == "data root":
            (work / "data").mkdir()
            (work / "data" / "x.bin").write_bytes(b"1")
        builds.append(cmd)
        return 0

    monkeypatch.setattr(boot, "ROOT", repo)
    monkeypatch.setattr(boot, "VENV", repo / ".venv")
    monkeypatch.setattr(boot, "run", build)
    monkeypatch.setattr(sys, "path", list(sys.path))  # (snakemake() puts ROOT/workflow on it)
    args = ["--directory", str(work), TARGET]
    assert boot.snakemake(args) == 0 and len(builds) == 1
    up = uptodate.is_up_to_date(work, repo, [TARGET], str(site))
    assert (up is not None) == (edit == "none"), up
    assert boot.snakemake(args) == 0 and len(builds) == (1 if edit == "none" else 2)
    assert boot.snakemake(args) == 0 and len(builds) == (1 if edit == "none" else 2)  # now up to date
