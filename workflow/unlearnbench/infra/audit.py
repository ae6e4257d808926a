"""Environment and provenance audit: `python -m unlearnbench audit results/ [--json audit.json]`.

Compares
  (a) envs/unlearnbench.yaml (the conda environment's pip pins) with
  (b) requirements.txt (the top-level pins) and requirements.lock (every package, transitively),
  (c) the running environment (importlib.metadata), and
  (d) what each artefact recorded (`*.prov.json`: versions, commit, input and output hashes), and
  (e) the tuned values each run used (unlearn.json) with the hyperparameter lock they came from,
and reports every difference: a pin that drifted between the env file and requirements, a lock
entry the running environment does not match, an artefact made by another version or commit, an
artefact whose inputs changed since it was made, an artefact modified after it was written, a
table built from tuned values that differ from the lock (or from no lock at all), an artefact of
method code that ran without the OS wall (its access declared, not enforced).
Exit code 0 when nothing differs, 1 otherwise; a human-readable summary on stdout, JSON on request.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from ..errors import UserError
from ..tuning import read_lock
from .provenance import REPO, SUFFIX, git_state, sha256, versions

DRIVER_ONLY = {"snakemake", "snakemake-executor-plugin-slurm", "pytest", "pytest-xdist"}
_PIN = re.compile(r"^\s*([A-Za-z0-9_.\-\[\]]+)\s*==\s*([^\s;#]+)")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name.split("[")[0]).lower()


def read_pins(lines: list[str]) -> dict[str, str]:
    pins = {}
    for line in lines:
        m = _PIN.match(line.strip().lstrip("- ").strip())
        if m:
            pins[_norm(m.group(1))] = m.group(2)
    return pins


def requirement_pins(repo: Path) -> dict[str, str]:
    return read_pins((repo / "requirements.txt").read_text().splitlines())


def conda_pins(repo: Path) -> dict[str, str]:

    env = yaml.safe_load((repo / "envs" / "unlearnbench.yaml").read_text())
    pip = next((d["pip"] for d in env.get("dependencies", []) if isinstance(d, dict) and "pip" in d), [])
    return read_pins(pip)


def lock_pins(repo: Path) -> dict[str, str]:
    p = repo / "requirements.lock"
    return read_pins(p.read_text().splitlines()) if p.exists() else {}


def installed() -> dict[str, str]:
    return {_norm(d.metadata["Name"]): d.version for d in metadata.distributions() if d.metadata["Name"]}


def check_environment(repo: Path) -> list[dict[str, Any]]:
    out = []
    req, conda, lock, env = requirement_pins(repo), conda_pins(repo), lock_pins(repo), installed()
    for name in sorted(set(req) | set(conda)):
        if name in DRIVER_ONLY and name not in conda:  # tools of the driver environment, not of the rules'
            continue
        if req.get(name) != conda.get(name):
            out.append({"kind": "pin drift", "package": name, "requirements.txt": req.get(name),
                        "envs/unlearnbench.yaml": conda.get(name)})
    if not lock:
        out.append({"kind": "no lock", "detail": "requirements.lock is missing; run `python3.11 bootstrap.py lock`"})
    for name, v in sorted(req.items()):
        if lock and lock.get(name) != v:
            out.append({"kind": "lock drift", "package": name, "requirements.txt": v, "requirements.lock": lock.get(name)})
    for name, v in sorted(lock.items()):
        have = env.get(name)
        if have is None:
            out.append({"kind": "not installed", "package": name, "requirements.lock": v})
        elif have.split("+")[0] != v.split("+")[0]:
            out.append({"kind": "installed version differs", "package": name, "requirements.lock": v, "installed": have})
    return out


def check_artefacts(results: Path) -> tuple[list[dict[str, Any]], int]:
    out, n = [], 0
    now_v, now_git = versions(), git_state()
    cache: dict[str, str] = {}

    def digest(p: str) -> str | None:
        if p not in cache:
            cache[p] = sha256(p) if Path(p).is_file() else None
        return cache[p]

    base = results.parent
    for prov in sorted(results.rglob(f"*{SUFFIX}")):
        n += 1
        try:
            rec = json.loads(prov.read_text())
        except json.JSONDecodeError:
            out.append({"kind": "unreadable provenance", "file": str(prov)})
            continue
        where = str(prov)[: -len(SUFFIX)]
        for pkg, v in rec.get("versions", {}).items():
            if now_v.get(pkg) != v:
                out.append({"kind": "made by another version", "artefact": where, "package": pkg, "recorded": v,
                            "now": now_v.get(pkg)})
        wall = rec.get("wall")
        if wall and wall.get("enforced") is False:  # method code ran without the OS wall (wall.py)
            out.append({"kind": "access declared, not enforced", "artefact": where, "why": wall.get("why", "")})
        rg = rec.get("git", {})
        if rg.get("commit") and now_git.get("commit") and rg["commit"] != now_git["commit"]:
            out.append({"kind": "made by another commit", "artefact": where, "recorded": rg["commit"], "now": now_git["commit"]})
        for role in ("inputs", "outputs"):
            for path, h in rec.get(role, {}).items():
                p = path if Path(path).is_absolute() else str(base / path)
                now = digest(p)
                if now is None:
                    out.append({"kind": f"{role[:-1]} missing", "artefact": where, "file": path})
                elif now != h:
                    kind = "input changed since" if role == "inputs" else "artefact modified since"
                    out.append({"kind": kind, "artefact": where, "file": path})
    return out, n


def check_tuned(results: Path) -> list[dict[str, Any]]:
    """Runs whose tuned values differ from the hyperparameter lock now, named with the tables
    (their provenance inputs) that were built from them."""

    tables: dict[str, list[str]] = {}
    for prov in sorted((results / "tables").glob(f"*.csv{SUFFIX}")) if (results / "tables").exists() else []:
        try:
            inputs = json.loads(prov.read_text()).get("inputs", {})
        except json.JSONDecodeError:
            continue
        for path in inputs:
            tables.setdefault(str(Path(path).parent), []).append(prov.name[: -len(".csv" + SUFFIX)])
    out, locks = [], {}
    for info in sorted(results.rglob("unlearn.json")):
        try:
            tuned = json.loads(info.read_text()).get("tuned")
        except json.JSONDecodeError:
            continue
        if not tuned:
            continue
        rel = info.parent.relative_to(results.parent).as_posix()
        where = {"run": rel, "tables": ", ".join(sorted(set(tables.get(rel, [])))) or "(none)"}
        if tuned.get("unlocked"):
            out.append({"kind": "tuned values not locked", **where, "entry": tuned["entry"]})
            continue
        if tuned["lock"] not in locks:
            try:
                locks[tuned["lock"]] = read_lock(tuned["lock"])
            except UserError:
                locks[tuned["lock"]] = {}
        record = locks[tuned["lock"]].get(tuned["entry"], {})
        now = record.get("chosen", {}).get(tuned.get("instance"))
        if record.get("fingerprint") != tuned["fingerprint"] or now != tuned["values"]:
            out.append({"kind": "tuned values differ from the lock", **where, "entry": tuned["entry"],
                        "used": tuned["values"], "lock": now})
    return out


def run_audit(results: str, json_out: str | None = None, repo: str | None = None) -> int:
    results_p = Path(results)
    repo_p = Path(repo) if repo else REPO
    if not (repo_p / "requirements.txt").exists():
        raise SystemExit(f"audit: {repo_p} is not an unlearnbench checkout (no requirements.txt); pass --repo")
    findings = check_environment(repo_p)
    n = 0
    if results_p.exists():
        art, n = check_artefacts(results_p)
        findings += art + check_tuned(results_p)
    elif results != "results":
        raise SystemExit(f"audit: {results_p} does not exist")
    counts = Counter(f["kind"] for f in findings)
    print(f"audit of {repo_p} (environment) and {results_p} ({n} artefact provenance records)")
    if not findings:
        print("no differences: env file, requirements, lock, running environment and every artefact agree")
    for f in findings:
        detail = ", ".join(f"{k}={v}" for k, v in f.items() if k != "kind")
        print(f"- {f['kind']}: {detail}")
    if findings:
        print("summary: " + "; ".join(f"{v} × {k}" for k, v in counts.most_common()))
    if json_out:
        Path(json_out).write_text(json.dumps({"repo": str(repo_p), "results": str(results_p), "artefacts": n,
                                              "differences": findings, "counts": dict(counts)}, indent=2) + "\n")
    return 1 if findings else 0


__all__ = ["run_audit", "check_environment", "check_artefacts", "check_tuned", "read_pins", "UserError"]
