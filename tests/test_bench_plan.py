"""benchmarks/bench_pipeline.py: a paper's benchmark builds its claims page with the tables its claims
read and the tables holding its paper-exact rows, on both tiers."""

import importlib.util
import json

import pytest
import yaml

from conftest import REPO


def _module():
    spec = importlib.util.spec_from_file_location("bench_pipeline", REPO / "benchmarks" / "bench_pipeline.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_a_paper_benchmark_builds_its_claims_and_the_tables_of_its_claims_and_paper_rows(tmp_path):
    doc = {"studies": {"t1": {"methods": ["a"]}, "t2": {"methods": ["a", "a_paper"]}, "t3": {"methods": ["a"]},
                       "t4": {"methods": ["a_paper"]}},
           "papers": {"p": {"studies": ["t1", "t2", "t3"], "claims": [{"study": "t1"}, {"study": "t3", "unavailable": "x"}]}}}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(doc))
    # t1: a claim; t2: a paper-exact row; t3: its only claim is unavailable; t4: not the paper's study
    assert _module().headline("p", path) == ["results/papers/p.claims.md", "results/tables/t1.md", "results/tables/t2.md"]


def test_every_shipped_paper_and_real_tier_has_a_headline_build():
    mod = _module()
    for folder in sorted((REPO / "workflow" / "papers").iterdir()):
        targets = mod.headline(folder.name)
        assert targets[0] == f"results/papers/{folder.name}.claims.md" and len(targets) > 1, folder.name
        if (folder / "real.yaml").exists():
            real = mod.headline(f"{folder.name}_real", folder / "real.yaml")
            assert real[0] == f"results/papers/{folder.name}_real.claims.md" and len(real) > 1, folder.name


def test_a_cold_build_measured_in_segments_sums_them_at_one_commit(tmp_path, monkeypatch):
    mod = _module()
    calls = []

    def fake_run(work, cores, targets, *extra, env=None):  # Snakemake's wall time and log, without Snakemake
        calls.append(targets)
        if targets != ["t.md"]:  # a segment: its progress line may count more than it runs
            return 100.0, "".join(f"Finished jobid: {i} (Rule: a)\n{i} of 9 steps ({i * 11}%) done\n" for i in (1, 2, 3))
        return 250.0, "".join(f"Finished jobid: {i} (Rule: b)\n{i} of 5 steps ({i * 20}%) done\n" for i in range(1, 6))

    monkeypatch.setattr(mod, "run", fake_run)
    kw = dict(extra=("--configfile=x.yaml",), commit="abc1234")
    first = mod.bench("real_p", ["t.md"], 2, tmp_path, change=False, until=("models/a.pt",), **kw)
    assert first is None and calls[0] == ["models/a.pt"]
    assert json.loads((tmp_path / "real_p.partial.json").read_text())["segments"][0]["jobs"] == 3
    monkeypatch.setattr(mod, "build_changes", lambda a, b: {"def5678": ["workflow/x.py"], "abc9999": []}[b])
    with pytest.raises(SystemExit, match="HEAD is def5678 and changes workflow/x.py"):  # another pipeline
        mod.bench("real_p", ["t.md"], 2, tmp_path, change=False, resume=True, extra=kw["extra"], commit="def5678")
    stray = tmp_path / "work_real_p" / "results" / "runs" / "x.json"  # a job an interrupted run finished
    stray.parent.mkdir(parents=True)
    stray.write_text("{}")
    with pytest.raises(SystemExit, match="changed since segment 1 ended"):
        mod.bench("real_p", ["t.md"], 2, tmp_path, change=False, resume=True, **kw)
    stray.unlink()
    second = mod.bench("real_p", ["t.md"], 2, tmp_path, change=False, resume=True, until=("runs/b.json",),
                       extra=kw["extra"], commit="abc9999")  # a commit that changed no file a build reads
    assert second is None and len(json.loads((tmp_path / "real_p.partial.json").read_text())["segments"]) == 2
    res = mod.bench("real_p", ["t.md"], 2, tmp_path, change=False, resume=True, **kw)
    assert calls[2] == ["t.md"] and res["cold_s"] == 450.0 and res["jobs"] == 11
    assert [s["seconds"] for s in res["segments"]] == [100.0, 100.0, 250.0]
    assert res["load_before"] == res["segments"][0]["load_before"]
    assert not (tmp_path / "real_p.partial.json").exists()
    with pytest.raises(SystemExit, match="start it with --until"):  # nothing left to resume
        mod.bench("real_p", ["t.md"], 2, tmp_path, change=False, resume=True, **kw)
    one = mod.bench("real_p", ["t.md"], 2, tmp_path, change=False, **kw)  # a build in one go: no segments
    assert one["cold_s"] == 250.0 and "segments" not in one


def test_extend_adds_one_segment_to_a_finished_build_and_keeps_its_work(tmp_path, monkeypatch):
    mod = _module()
    monkeypatch.setattr(mod, "run", lambda work, cores, targets, *extra, env=None: (
        60.0, "".join(f"Finished jobid: {i} (Rule: c)\n" for i in (1, 2))))
    with pytest.raises(SystemExit, match="nothing to extend for real_p"):  # no finished build yet
        mod.bench("real_p", ["t.md"], 2, tmp_path, change=False, extend=True, extra=("--configfile=x.yaml",), commit="abc1234")
    work = tmp_path / "work_real_p" / "results" / "models"
    work.mkdir(parents=True)
    (tmp_path / "real_p.json").write_text("{}")
    with pytest.raises(SystemExit, match="is not a bench record"):  # a damaged record: one line, nothing run
        mod.bench("real_p", ["t.md"], 2, tmp_path, change=False, extend=True, extra=("--configfile=x.yaml",), commit="abc1234")
    (work / "a.time.json").write_text(json.dumps({"seconds": 30.0}))  # a job of the finished build
    (tmp_path / "real_p.json").write_text(json.dumps({"cold_s": 500.0, "jobs": 7, "commit": "abc1234", "date": "2026-12-01",
                                                      "load_before": [1.0, 1.0, 1.0]}))
    res = mod.bench("real_p", ["t.md"], 2, tmp_path, change=False, extend=True, extra=("--configfile=x.yaml",),
                    commit="def5678")
    assert (work / "a.time.json").exists() and res["compute_s"] == 30.0  # the work directory is kept
    assert res["cold_s"] == 560.0 and res["jobs"] == 9 and res["load_before"] == [1.0, 1.0, 1.0]
    assert [(s["seconds"], s["commit"]) for s in res["segments"]] == [(500.0, "abc1234"), (60.0, "def5678")]
