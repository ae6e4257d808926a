#!/usr/bin/env python3
"""Benchmark the table1 workflow on this machine (run on 2 CPU cores for the README numbers).

Records: the cold run time, the no-op rerun time, the time after changing one method
hyperparameter, and each method's unlearning time divided by the retraining time.
Writes benchmarks/out/table1.json and prints a Markdown summary.

    python3.11 bootstrap.py bench [--cores 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
TARGET = "results/tables/table1.csv"


def snakemake(work: Path, cores: int, *extra: str) -> float:
    cmd = [str(Path(sys.executable).with_name("snakemake")), "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(work), "--cores", str(cores), *extra, TARGET, "--quiet", "rules"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO / "workflow")})
    if proc.returncode != 0:
        sys.exit(f"snakemake failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "out"))
    args = ap.parse_args()
    out = Path(args.out)
    work = out / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)

    cold = snakemake(work, args.cores)
    noop = snakemake(work, args.cores)
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    ft = dict(cfg["methods"]["finetune"])
    ft["lr"] = ft["lr"] * 0.5  # one hyperparameter of one method instance
    overlay = work / "changed.yaml"
    overlay.write_text(yaml.safe_dump({"methods": {"finetune": ft}}))
    changed = snakemake(work, args.cores, f"--configfile={overlay}")  # "=" form: the option takes several values

    t = pd.read_csv(work / TARGET)
    times = t[t.metric == "time_s"].set_index("method")["mean"]
    ratios = {m: float(times[m] / times["retrain"]) for m in times.index if m not in ("original", "retrain")}
    result = {
        "cores": args.cores, "machine": platform.platform(), "cpu_count": os.cpu_count(),
        "cold_s": round(cold, 1), "noop_s": round(noop, 2), "after_param_change_s": round(changed, 1),
        "retrain_time_s": round(float(times["retrain"]), 2),
        "unlearn_time_over_retrain": {k: round(v, 4) for k, v in ratios.items()},
        "targets": {"cold_s": 600, "noop_s": 5},
    }
    (out / "table1.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"| measure | seconds |\n|---|---|\n| cold run | {cold:.1f} |\n| no-op rerun | {noop:.2f} |\n"
          f"| after changing finetune.lr | {changed:.1f} |")
    print("\n| method | unlearning time / retrain time |\n|---|---|")
    for k, v in ratios.items():
        print(f"| {k} | {v:.4f} |")


if __name__ == "__main__":
    main()
