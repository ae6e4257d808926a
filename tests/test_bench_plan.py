"""benchmarks/bench_pipeline.py: a paper's benchmark builds its claims page with the tables its claims
read and the tables holding its paper-exact rows, on both tiers."""

import importlib.util

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
