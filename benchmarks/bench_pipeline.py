#!/usr/bin/env python3
"""The pipeline's own cost: cold wall time vs the compute inside its jobs, and the no-op time.

For each benchmark (table1, and each paper's index page with --papers), in a fresh work directory:
  cold_s        wall time of the first build
  compute_s     the single-thread compute inside its jobs: the sum of every stage's `seconds`
                (*.time.json sidecars: training, pruning, artefacts, unlearning)
  ratio         cold_s / (compute_s / cores): 1.0 = no pipeline overhead at all
  jobs          number of jobs the build ran
  noop_s        wall time of a rerun that finds nothing to do
  startup_s     `snakemake --version` (the floor every invocation pays: Snakemake's own imports)
  changed_s     (table1) after changing one method hyperparameter (methods.finetune.lr)
plus the machine (CPU, cores, load average before and after) and the git commit. Writes
benchmarks/out/<name>.json and prints a Markdown table.

    python3.11 bootstrap.py bench                 # table1
    python3.11 bootstrap.py bench --papers        # + every workflow/papers/<p> index page (long)
    python3.11 bootstrap.py bench --only mugan    # one paper
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def run(work: Path, cores: int, targets: list[str], *extra: str) -> tuple[float, str]:
    cmd = [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(work), "--cores", str(cores),
           "--workflow-profile", str(REPO / "workflow" / "profiles" / "default"), *extra, *targets]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    secs = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"snakemake failed on {targets}:\n{proc.stderr[-3000:]}")
    return secs, proc.stdout + proc.stderr


def compute_seconds(work: Path) -> tuple[float, dict[str, float]]:
    by_kind: dict[str, float] = {}
    for f in (work / "results").rglob("*.time.json"):
        rec = json.loads(f.read_text())
        kind = "train" if "/models/" in str(f) else "artefact" if "/artefacts/" in str(f) else "unlearn"
        secs = sum(rec["repeats"]) if rec.get("repeats") else float(rec["seconds"])  # time_unlearn runs k times
        by_kind[kind] = by_kind.get(kind, 0.0) + secs
    return sum(by_kind.values()), by_kind


def jobs_done(log: str) -> int:
    m = re.findall(r"(\d+) of (\d+) steps \(100%\) done", log)
    return int(m[-1][1]) if m else 0


def machine() -> dict:
    cpu = platform.processor()
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}


def bench(name: str, targets: list[str], cores: int, out: Path, change: bool) -> dict:
    work = out / f"work_{name}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    load0 = os.getloadavg()
    cold, log = run(work, cores, targets)
    compute, by_kind = compute_seconds(work)
    noop, _ = run(work, cores, targets)
    t0 = time.perf_counter()
    subprocess.run([SNAKEMAKE, "--version"], capture_output=True)
    startup = time.perf_counter() - t0
    res = {"name": name, "targets": targets, "cores": cores, "cold_s": round(cold, 1), "compute_s": round(compute, 1),
           "compute_by_stage_s": {k: round(v, 1) for k, v in by_kind.items()}, "jobs": jobs_done(log),
           "ratio": round(cold / (compute / cores), 2) if compute else None, "noop_s": round(noop, 2),
           "startup_s": round(startup, 2), "load_before": [round(v, 2) for v in load0]}
    if change:
        ft = dict(yaml.safe_load((REPO / "config.yaml").read_text())["methods"]["finetune"])
        ft["lr"] = 0.5 * float(ft.get("lr", 0.02))
        overlay = work / "changed.yaml"
        overlay.write_text(yaml.safe_dump({"methods": {"finetune": {k: v for k, v in ft.items() if k != "tune"}}}))
        res["changed_s"] = round(run(work, cores, targets, f"--configfile={overlay}")[0], 1)
    res["load_after"] = [round(v, 2) for v in os.getloadavg()]
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--papers", action="store_true", help="also every paper's index page")
    ap.add_argument("--only", nargs="*", default=None, help="benchmarks to run (table1 and/or paper names)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "out"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    papers = sorted(p.name for p in (REPO / "workflow" / "papers").iterdir() if (p / "study.yaml").exists())
    plan = {"table1": ["results/tables/table1.csv"]}
    plan.update({p: [f"results/papers/{p}.md"] for p in papers})
    names = args.only if args.only else ["table1"] + (papers if args.papers else [])
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    rows = []
    for name in names:
        res = bench(name, plan[name], args.cores, out, change=name == "table1")
        res.update(machine=machine(), commit=commit, date=time.strftime("%Y-%m-%d"))
        (out / f"{name}.json").write_text(json.dumps(res, indent=2) + "\n")
        rows.append(res)
        print(f"{name}: cold {res['cold_s']} s, compute {res['compute_s']} s, ratio {res['ratio']}, "
              f"noop {res['noop_s']} s, {res['jobs']} jobs", flush=True)
    print("\n| benchmark | jobs | cold (s) | in-job compute (s) | cold ÷ (compute ÷ cores) | no-op (s) | snakemake startup (s) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {r['jobs']} | {r['cold_s']} | {r['compute_s']} | {r['ratio']} | {r['noop_s']} | {r['startup_s']} |")


if __name__ == "__main__":
    main()
