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
        assert names <= {"study.yaml", "study.lock.yaml", "full.yaml", "full.lock.yaml", "real.yaml", "real.lock.yaml",
                         "README.md", "rules.smk"}, (folder, names)


def test_every_rule_has_a_script_named_after_it():
    import re

    rules = []
    for smk in (REPO / "workflow" / "rules").rglob("*.smk"):
        rules += re.findall(r"^(?:rule|checkpoint) (\w+):", smk.read_text(), flags=re.M)
    scripts = {p.stem for p in (REPO / "workflow" / "scripts").glob("*.py")}
    assert rules and set(rules) <= scripts, sorted(set(rules) - scripts)


# --------------------------------------------------------------------------- the import graph
# Layers, bottom to top: a module may import its own layer or lower ones (the most specific prefix
# decides; `infra` is machinery that the science never needs to open; the settings ledger reads the
# config and its locks, so it sits with them).
LAYERS = [
    ("unlearnbench.infra.cli", 8), ("unlearnbench.infra.audit", 8), ("unlearnbench.__main__", 8),
    ("unlearnbench.infra.provenance", 1), ("unlearnbench.infra", 0),
    ("unlearnbench.errors", 0), ("unlearnbench.keys", 0), ("unlearnbench.studies", 0), ("unlearnbench.methods.dau.spec", 0),
    ("unlearnbench.io", 1), ("unlearnbench.runtime", 1),
    ("unlearnbench.models", 2), ("unlearnbench.data", 2), ("unlearnbench.training", 2),
    ("unlearnbench.parts", 3), ("unlearnbench.metrics", 3),
    ("unlearnbench.methods", 4), ("unlearnbench.report.ledger", 6), ("unlearnbench.report", 5),
    ("unlearnbench.config", 6), ("unlearnbench.tuning", 6), ("unlearnbench.probe", 6),
    ("unlearnbench.pipeline", 7), ("unlearnbench", 0),
]
ENTRY_POINTS = {"unlearnbench.__main__", "unlearnbench.probe"}  # they set the numerics mode before numpy loads
HEAVY = {"torch", "torchvision", "timm", "numpy", "pandas", "matplotlib", "sklearn", "scipy", "safetensors", "yaml", "tqdm", "PIL",
         "snakemake", "jsonschema", "threadpoolctl"}


def _layer(module: str) -> int:
    return next(layer for prefix, layer in LAYERS if module == prefix or module.startswith(prefix + "."))


def _module_graph():
    """{module: {"path", "top": set of modules imported at module level, "local": [(line, target, conditional)]}}."""
    import ast

    def name(p):
        parts = list(p.relative_to(LIB.parent).with_suffix("").parts)
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    mods = {name(p): {"path": p, "top": set(), "local": []} for p in LIB.rglob("*.py")}
    for m, info in mods.items():
        tree = ast.parse(info["path"].read_text())
        pkg = m if info["path"].name == "__init__.py" else m.rsplit(".", 1)[0]
        direct = set()
        for f in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
            direct |= {id(s) for s in f.body if isinstance(s, (ast.Import, ast.ImportFrom))}
        in_function = {id(x) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                       for x in ast.walk(f) if isinstance(x, (ast.Import, ast.ImportFrom))}
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            if isinstance(node, ast.ImportFrom) and node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                targets = [".".join(base + ([node.module] if node.module else []))]
                targets = [f"{targets[0]}.{a.name}" if f"{targets[0]}.{a.name}" in mods else targets[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                targets = [node.module]
            else:
                targets = [a.name for a in node.names]
            for t in targets:
                if t.startswith("unlearnbench"):
                    while t not in mods and "." in t:
                        t = t.rsplit(".", 1)[0]
                if id(node) in in_function:
                    info["local"].append((node.lineno, t, id(node) not in direct))
                elif t in mods and t != m:
                    info["top"].add(t)
    return mods


def _dag_time_modules(mods) -> set[str]:
    """The modules Snakemake imports while it builds the DAG: those the Snakefile and rule files import
    at top level, closed over module-level imports (a package that imports its children by name —
    methods, report.figures — imports them all)."""
    import re

    roots = set()
    for f in [REPO / "Snakefile", *(REPO / "workflow" / "rules").rglob("*.smk")]:
        roots |= set(re.findall(r"^\s*(?:from|import) (unlearnbench[\w.]*)", f.read_text(), flags=re.M))
    seen, todo = set(), [r for r in roots if r in mods]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        parent = m.rsplit(".", 1)[0] if "." in m else None
        todo += list(mods[m]["top"]) + ([parent] if parent in mods else [])
        if m in ("unlearnbench.methods", "unlearnbench.report.figures", "unlearnbench.models"):
            todo += [c for c in mods if c.rsplit(".", 1)[0] == m and not c.rsplit(".", 1)[1].startswith("_")
                     and m != "unlearnbench.models"]
    return seen


def test_imports_only_run_downward_and_never_in_a_cycle():
    mods = _module_graph()
    upward = sorted(f"{m} -> {t}" for m, info in mods.items() for t in info["top"] | {t for _, t, _ in info["local"] if t in mods}
                    if _layer(t) > _layer(m))
    assert not upward, f"imports from a lower layer to a higher one: {upward}"
    index, low, stack, on, cycles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in mods[v]["top"] | {t for _, t, _ in mods[v]["local"] if t in mods}:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in mods:
        if v not in index:
            visit(v)
    assert not cycles, f"modules that import each other: {cycles}"


def test_function_level_imports_only_where_the_torch_free_dag_needs_them():
    """A module Snakemake imports while it builds the DAG may import, inside a function, what the DAG
    must not load (torch, plotting, job-only modules); every other module imports at its top, except
    under a condition (an optional backend) and in the entry points that set the numerics mode first."""
    import sys

    mods = _module_graph()
    dag = _dag_time_modules(mods)
    assert {"unlearnbench.config", "unlearnbench.methods.finetune", "unlearnbench.tuning"} <= dag
    assert "unlearnbench.pipeline" not in dag and not any(m.startswith("unlearnbench.infra.warm") for m in dag)
    bad = []
    for m, info in mods.items():
        for line, target, conditional in info["local"]:
            top = target.split(".")[0]
            if m in dag:
                ok = top in HEAVY or (target in mods and target not in dag)
            else:
                ok = conditional or m in ENTRY_POINTS or top in sys.stdlib_module_names and m == "unlearnbench.infra.warm"
            if not ok:
                bad.append(f"{info['path'].relative_to(REPO)}:{line} imports {target}")
    assert not bad, "function-level imports without a DAG reason: " + "; ".join(bad)


def test_rule_files_share_only_what_common_smk_defines():
    """A rule file reads another rule's files through `rules.<rule>.output`, never through a variable
    another rule file defined (the Snakefile includes them in sorted order)."""
    import re

    files = sorted((REPO / "workflow" / "rules").rglob("*.smk")) + sorted((REPO / "workflow" / "papers").glob("*/rules.smk"))
    defined = {f: set(re.findall(r"^([A-Z][A-Z0-9_]*)\s*=", f.read_text(), flags=re.M)) for f in files}
    common = defined[REPO / "workflow" / "rules" / "common.smk"]
    leaks = []
    for f in files:
        used = set(re.findall(r"\b([A-Z][A-Z0-9_]{2,})\b", f.read_text()))
        for other, names in defined.items():
            if other != f and other.name != "common.smk":
                leaks += [f"{f.name} uses {n} from {other.name}" for n in sorted(used & names - common - defined[f])]
    assert not leaks, leaks


def test_a_name_defined_by_two_paper_folders_is_refused(tmp_path):
    """Every paper folder (and config.yaml) is its own namespace: a second definition of a method,
    study, figure or tuning entry stops the build with one line naming both files."""
    from types import SimpleNamespace

    from unlearnbench.config import load_config_files

    a, b = tmp_path / "a" / "study.yaml", tmp_path / "b" / "study.yaml"
    for f, lr in ((a, 0.1), (b, 0.2)):
        f.parent.mkdir()
        f.write_text(f"methods:\n  ft_{f.parent.name}: {{method: finetune}}\n  finetune: {{method: finetune, lr: {lr}}}\n")
    wf = SimpleNamespace(configfiles=[], config_settings=SimpleNamespace(overwrite_config={}, configfiles=[]))
    with pytest.raises(SystemExit) as e:
        load_config_files(wf, {}, [str(a), str(b)])
    assert str(e.value) == f"config error: methods.finetune is defined by both {a} and {b}; rename it in one of them"
    b.write_text("methods:\n  ft_b: {method: finetune}\n")
    config = {}
    assert load_config_files(wf, config, [str(a), str(b)]) == [str(a), str(b)]
    assert set(config["methods"]) == {"ft_a", "finetune", "ft_b"}
