#!/usr/bin/env python3
"""How long must a recipe train for the membership attacks to see its members? One original per
(epochs, seed) on a tuning cell, judged on validation data only: validation accuracy, and each
attack's held-out balanced accuracy with the cell's retain set as members and the validation
images of the retained classes as non-members (the pipeline's `compute_metrics`, with validation in
the place of test). No test image and no reported cell is looked at, so the epochs it picks may set
a recipe that reported tables then use (issue #20: original test accuracy >= 88 %, attack signal
>= 0.60).

    .venv/bin/python benchmarks/recipe_signal.py --recipe fashion --dataset fashion --model resnet20 \
        --scenario clue_tune_class5 --seeds 100 101 102 --epochs 15 20 25

Config: what the Snakefile loads (config.yaml, every paper's study.yaml, then `--configfile` overlays
in order). The data files come from the pipeline (`results/data/<dataset>/`); a missing one is named with the
snakemake target that makes it. Runs go in parallel, one per core, each on one thread under the
numerics mode the Snakefile would set. The record: benchmarks/out/recipe_<recipe>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

from unlearnbench.infra.numerics import export  # noqa: E402  (standard library only)

SIGNAL, ACCURACY = 0.60, 88.0  # issue #20's bars


def one_run(args: tuple) -> dict:
    """Train one original with `recipe` for `epochs` and judge it on validation data."""
    data, split, request, dataset_spec, model_spec, recipe, epochs, seed = args
    import numpy as np
    import torch

    from unlearnbench.data import RequestData, read_archive, to_float
    from unlearnbench.io import read_json
    from unlearnbench.metrics.accuracy import compute_metrics
    from unlearnbench.metrics.mia import ATTACKS, metric_name
    from unlearnbench.models.checkpoint import new_model
    from unlearnbench.runtime import seed_everything
    from unlearnbench.training import train

    seed_everything(seed, 1)  # as the pipeline's train_original job does
    arrays, split_d = read_archive(data), read_json(split)
    x, y = to_float(arrays["x"]), torch.from_numpy(arrays["y"])
    tr, va = torch.as_tensor(split_d["train"]), torch.as_tensor(split_d["val"])
    model = new_model(arrays, model_spec)
    t0 = time.perf_counter()
    log = train(model, x[tr], y[tr], {**recipe, "epochs": epochs}, seed, torch.device("cpu"), val=(x[va], y[va]),
                desc=f"e{epochs} s{seed}")
    seconds = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(x[i:i + 1000]) for i in range(0, len(x), 1000)]).numpy()
    rd = RequestData.load(data, split, request)
    val = np.asarray(split_d["val"])
    metrics, _ = compute_metrics(logits, rd.y, {"test": val, "val": val}, rd.request, rd.num_classes, seed=seed)
    attacks = {name: metrics[f"{metric_name(name)}_bacc"] for name in ATTACKS}
    return {"epochs": epochs, "seed": seed, "train_seconds": round(seconds, 1),
            "train_acc": round(log[-1]["train_acc"], 2), "val_acc_retained": round(metrics["acc_val"], 2),
            "val_acc_all": round(float((logits[val].argmax(1) == rd.y[val]).mean() * 100), 2),
            "attack_bacc": {k: round(v, 4) for k, v in attacks.items()}}


def summarise(runs: list[dict], attack: str = "svc") -> list[dict]:
    """Per epochs: n, seconds, validation accuracy, and `attack`'s (the one the page reports) lowest
    seed; a count meets the bars when every seed clears both."""
    import numpy as np

    rows = []
    for e in sorted({r["epochs"] for r in runs}):
        rs = [r for r in runs if r["epochs"] == e]
        best = [max(r["attack_bacc"].values()) for r in rs]
        row = {"epochs": e, "n": len(rs), "train_seconds_mean": round(float(np.mean([r["train_seconds"] for r in rs])), 1),
               "val_acc_all": [round(float(np.mean([r["val_acc_all"] for r in rs])), 2),
                               round(float(np.std([r["val_acc_all"] for r in rs], ddof=1)) if len(rs) > 1 else 0.0, 2)],
               "attack_min": min(r["attack_bacc"][attack] for r in rs), "best_attack_min": min(best)}
        row["meets"] = bool(row["attack_min"] >= SIGNAL and min(r["val_acc_all"] for r in rs) >= ACCURACY)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configfile", nargs="+", default=[],
                    help="overlays read after config.yaml, as Snakemake's --configfile (e.g. a paper's real.yaml)")
    ap.add_argument("--results", default=str(ROOT / "results"), help="the pipeline's results directory (data files)")
    ap.add_argument("--recipe", required=True)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--scenario", required=True, help="a tuning cell's scenario (never a reported one)")
    ap.add_argument("--seeds", type=int, nargs="+", required=True)
    ap.add_argument("--epochs", type=int, nargs="+", required=True)
    ap.add_argument("--attack", default="svc",
                    help="the attack that judges the recipe: the one the page's table reports (MuGAN: entropy_lr)")
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", default=None, help="record (default benchmarks/out/recipe_<recipe>.json)")
    a = ap.parse_args(argv)
    fail = lambda msg: print(f"recipe_signal: {msg}", file=sys.stderr) or 2
    if min(a.epochs) < 1 or a.cores < 1:
        return fail("--epochs and --cores take whole numbers >= 1")
    out = Path(a.out or ROOT / "benchmarks" / "out" / f"recipe_{a.recipe}.json")
    if not out.parent.is_dir():
        return fail(f"--out: directory {out.parent} does not exist")

    import yaml
    from snakemake.utils import update_config

    from bench_pipeline import machine
    from unlearnbench.configfile import check_config_file
    from unlearnbench.errors import UserError
    from unlearnbench.studies import study_setups

    # what the Snakefile loads: config.yaml, every paper's study.yaml, then the command line's overlays
    papers = sorted((ROOT / "workflow" / "papers").glob("*/study.yaml"))
    files_read = [ROOT / "config.yaml", *papers, *map(Path, a.configfile)]
    named = [ROOT / "config.yaml", *map(Path, a.configfile)]  # the files an error names (with the papers')
    config: dict = {}
    for f in files_read:
        if not f.exists():
            print(f"recipe_signal: config file {f} does not exist", file=sys.stderr)
            return 2
        try:
            check_config_file(f)  # size, encoding, alias bombs: before anything parses it
        except UserError as e:
            print(f"recipe_signal: {e}", file=sys.stderr)
            return 2
        update_config(config, yaml.safe_load(f.read_text()) or {})
    for group, name in (("training", a.recipe), ("datasets", a.dataset), ("models", a.model)):
        if name not in config.get(group, {}):
            return fail(f"{group} {name!r} is not in {', '.join(map(str, named))} or a paper's study.yaml")
    if a.scenario not in config.get("scenarios", {}):
        return fail(f"scenario {a.scenario!r} is not in {', '.join(map(str, named))} or a paper's study.yaml")
    # a scenario some study reports on this dataset (any seed) is no tuning cell; the same forget
    # scenario reported on another dataset (the digits tier's per-class figure) is another cell
    reported = sorted(n for n, st in config.get("studies", {}).items() if a.scenario in st.get("scenarios", [])
                      and any(s["dataset"] == a.dataset for s in study_setups(st)))
    if reported:
        print(f"recipe_signal: scenario {a.scenario!r} on {a.dataset!r} is reported by {', '.join(reported)}; judge "
              "a recipe on a tuning cell's scenario", file=sys.stderr)
        return 2
    d = Path(a.results) / "data" / a.dataset
    files = [d / "data.npz", d / "split.json", d / "forget" / f"{a.scenario}.json"]
    for f in files:
        if not f.exists():
            overlays = "".join(f" --configfile {c}" for c in a.configfile)
            return fail(f"{f} is missing; make it with: snakemake --cores 1{overlays} -- {f}")
    export(config.get("numerics", "portable"), threads=1)  # before the workers import torch / numpy
    from unlearnbench.metrics.mia import ATTACKS  # numpy, scipy, scikit-learn: only after export

    if a.attack not in ATTACKS:
        return fail(f"--attack {a.attack!r} is not an attack; use one of {', '.join(ATTACKS)}")
    jobs = [(str(files[0]), str(files[1]), str(files[2]), config["datasets"][a.dataset], config["models"][a.model],
             config["training"][a.recipe], e, s) for e in a.epochs for s in a.seeds]
    git = lambda *cmd: subprocess.run(["git", "-C", str(ROOT), *cmd], capture_output=True, text=True).stdout.strip()
    code = {"commit": git("rev-parse", "--short", "HEAD"), "tree_clean": not git("status", "--porcelain", "--untracked-files=no")}
    load = os.getloadavg()
    t0 = time.perf_counter()
    runs = []
    with ProcessPoolExecutor(max_workers=max(1, a.cores)) as pool:
        for r in pool.map(one_run, jobs):
            print(json.dumps(r), flush=True)
            runs.append(r)
    rows = summarise(runs, a.attack)
    record = {**code, "recipe": a.recipe, "attack": a.attack, "configfiles": [str(f.relative_to(ROOT)) if f.is_relative_to(ROOT) else str(f) for f in files_read], "dataset": a.dataset, "model": a.model, "scenario": a.scenario, "seeds": a.seeds,
              "judged_on": "validation split: accuracy; attacks with retain members vs retained-class validation non-members",
              "bars": {"attack_signal": SIGNAL, "accuracy": ACCURACY}, "summary": rows, "runs": runs,
              "machine": machine(),
              "load_before": [round(v, 2) for v in load], "wall_s": round(time.perf_counter() - t0, 1),
              "numerics": config.get("numerics", "portable"), "date": time.strftime("%Y-%m-%d %H:%M")}
    out.write_text(json.dumps(record, indent=1) + "\n")
    for row in rows:
        print(json.dumps(row))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
