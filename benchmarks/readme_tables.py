#!/usr/bin/env python3
"""Fill the READMEs' measured tables from the benchmark builds, so that no measured number is copied
into a README by hand.

A README marks each generated block with one of

    <!-- generated: <benchmark> <study> -->      the study's table from that benchmark's cold build
    <!-- generated: cost <benchmark>… -->        the pipeline's own cost, one row per benchmark record
    <!-- generated: budget <page min> <all min> <benchmark>… -->  those cold builds against a per-page and a total budget
    <!-- generated: numerics -->                 table1 cold in portable and native mode
    <!-- generated: wall -->                     table1 cold with and without the OS wall
    <!-- generated: claims <paper> -->           the paper's claims table from `bench --only <paper>`
    <!-- generated: real <paper> -->             its real tier: claims and tables from `bench --real`
    <!-- generated: ledger <paper> -->           its settings ledger, built from the config here and now
    <!-- generated: recipe <recipe> -->          how long the recipe must train (benchmarks/recipe_signal.py)
    ... (replaced) ...
    <!-- end generated -->

A study block is the rendered table `<study>.md` of the cold build `bootstrap.py bench` made for
<benchmark> (benchmarks/out/work_<benchmark>/cold_tables/, copied before the changed-setting run); every block is headed by the
record(s) (benchmarks/out/*.json): the commit, the machine, its load average before the run, the
numerics mode, the wall time. `--check` exits 1 when a block would change.

    python3.11 bootstrap.py bench --only table1 mugan     # the cold builds and their records
    .venv/bin/python benchmarks/readme_tables.py          # rewrite every README's generated blocks
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out"
BLOCK = re.compile(r"(<!-- generated: (\S+)(?: ([^\n]*?))? -->\n)(.*?)(<!-- end generated -->)", re.S)  # args: one line


def header(record: dict, extra: str = "") -> str:
    m = record["machine"]
    load = ", ".join(f"{v:.2f}" for v in record["load_before"])
    after = f", {record['load_after'][0]:.2f} (1 min) after it" if record.get("load_after") else ""
    if record.get("segments"):  # a cold build measured in uninterrupted parts (bench --until, then --resume)
        seg = record["segments"]
        times = " + ".join(f"{s['seconds']:.0f}" for s in seg)
        loads = "; ".join(", ".join(f"{v:.2f}" for v in s["load_before"]) for s in seg)
        commits = [s.get("commit") for s in seg]
        at = (f"; built at commits {', '.join(str(c) for c in commits)} (bench --extend: a finished build grown by a "
              f"change that kept its jobs)") if len(set(commits)) > 1 else ""
        extra = (f", in {len(seg)} segments of {times} s (load before each: {loads}; the pause between them not "
                 f"counted{at})") + extra
    return (f"*Generated from the cold build of `{' '.join(record['targets'])}` by `bootstrap.py bench` at commit "
            f"{record['commit']} ({record['date']}): {m['cpu']}, {m['cpu_count']} cores, load average before the run "
            f"{load} (1, 5, 15 min){after}, numerics {record.get('numerics', 'portable')}, {record['cores']} Snakemake cores, "
            f"{record['jobs']} jobs in {record['cold_s']:.0f} s{extra}.*\n\n")


def record(name: str) -> dict:
    path = OUT / f"{name}.json"
    if not path.exists():
        raise SystemExit(f"readme_tables: no record {path}; run `python3.11 bootstrap.py bench "
                         f"{'--' + name if name in ('numerics', 'wall') else '--real --only ' + name[5:] if name.startswith('real_') else '--only ' + name}` first")
    return json.loads(path.read_text())


def load(r: dict) -> str:
    return "/".join(f"{v:.2f}" for v in r["load_before"])


def cost(names: list[str]) -> str:
    recs = [record(n) for n in names]
    machines = sorted({f"{r['machine']['cpu']}, {r['machine']['cpu_count']} cores" for r in recs})
    out = [f"*Generated from the `bootstrap.py bench` records {', '.join(names)} (benchmarks/out/<name>.json): commit(s) "
           f"{', '.join(sorted({r['commit'] for r in recs}))} ({', '.join(sorted({r['date'] for r in recs}))}), "
           f"{'; '.join(machines)}, numerics {', '.join(sorted({r.get('numerics', 'portable') for r in recs}))}, "
           f"the benchmarks one after another; load = load average (1/5/15 min) before each build.*\n",
           "| benchmark | jobs | load before | cold (s) | in-job compute (s) | of it training (s) | training ÷ cores (s) "
           "| cold ÷ (compute ÷ cores) | all job work (s) "
           "| cold ÷ (work ÷ cores) | no-op, `bootstrap.py` (s) | no-op, `snakemake` (s) | `snakemake --version` (s) |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in recs:
        train = r.get("compute_by_stage_s", {}).get("train")  # ÷ cores: the floor no schedule goes under
        train_cols = "– | –" if train is None else f"{train:.0f} | {train / r['cores']:.0f}"
        out.append(f"| {r['name']} (`{' '.join(r['targets'])}`) | {r['jobs']} | {load(r)} | {r['cold_s']:.0f} | "
                   f"{r['compute_s']:.0f} | {train_cols} | {r['ratio']} | "
                   f"{r['job_work_s']:.0f} | {r['ratio_job_work']} | "
                   f"{r['noop_bootstrap_s']} | {r['noop_s']} | {r['startup_s']} |")
    out += [f"\n{r['name']}: one changed setting of an untuned method (`methods.retrain_indep.replica` 1 → 2) "
            f"rebuilt in {r['changed_s']:.0f} s." for r in recs if r.get("changed_s") is not None]
    return "\n".join(out) + "\n"


def budget(args: list[str]) -> str:
    """Each build's cold time against a per-page budget and their sum against a total one (minutes), beside
    its training ÷ cores (the least wall time any schedule of that build reaches) and its unlearning ÷ cores."""
    try:
        page, total, names = float(args[0]), float(args[1]), args[2:]
        if not names:
            raise ValueError
    except (IndexError, ValueError):
        raise SystemExit(f"readme_tables: a budget block reads `budget <page min> <all min> <benchmark>...`, got {args}")
    recs = [record(n) for n in names]

    def verdict(minutes: float, limit: float) -> str:
        return "within" if minutes <= limit else f"over ({minutes / limit:.1f}x)"

    out = [f"*Generated from the `bootstrap.py bench` records {', '.join(names)}: each cold build against the "
           f"{page:g}-min page budget, all of them one after another against {total:g} min; training ÷ cores (the "
           f"trainings alone, on every core) is the least wall time any schedule of that build reaches on its machine; "
           f"unlearning ÷ cores is the unlearning steps' share of the rest (the timing sidecars' `unlearn` stage).*\n",
           "| build | commit | machine | jobs | cold (min) | page budget | training ÷ cores (min) | trainings alone "
           "| unlearning ÷ cores (min) |",
           "|---|---|---|---|---|---|---|---|---|"]
    cold_sum = floor_sum = unlearn_sum = 0.0
    for r in recs:
        stages = r.get("compute_by_stage_s", {})
        cold = r["cold_s"] / 60
        floor, unlearn = (stages.get(k, 0.0) / r["cores"] / 60 for k in ("train", "unlearn"))
        cold_sum, floor_sum, unlearn_sum = cold_sum + cold, floor_sum + floor, unlearn_sum + unlearn
        out.append(f"| {r['name']} | {r['commit']} | {r['machine']['cpu']}, {r['cores']} cores | {r['jobs']} | {cold:.1f} | "
                   f"{verdict(cold, page)} | {floor:.1f} | {verdict(floor, page)} | {unlearn:.1f} |")
    out.append(f"| all {len(recs)} | | | {sum(r['jobs'] for r in recs)} | {cold_sum:.1f} | {verdict(cold_sum, total)} "
               f"(of {total:g}) | {floor_sum:.1f} | {verdict(floor_sum, total)} (of {total:g}) | {unlearn_sum:.1f} |")
    return "\n".join(out) + "\n"


def numerics() -> str:
    doc = record("numerics")
    m = doc["machine"]
    out = [f"*Generated from `bootstrap.py bench --numerics` at commit {doc['commit']} ({doc['date']}): {m['cpu']}, "
           f"{m['cpu_count']} cores; table1 cold in each mode, one after the other.*\n",
           "| numerics | jobs | load before | cold (s) | in-job compute (s) |", "|---|---|---|---|---|"]
    for mode, r in doc["modes"].items():
        out.append(f"| {mode} | {r['jobs']} | {load(r)} | {r['cold_s']:.0f} | {r['compute_s']:.0f} |")
    out.append(f"\nportable ÷ native: cold {doc['ratio_cold']}, in-job compute {doc['ratio_compute']}.")
    return "\n".join(out) + "\n"


def wall() -> str:
    doc = record("wall")
    m = doc["machine"]
    out = [f"*Generated from `bootstrap.py bench --wall` at commit {doc['commit']} ({doc['date']}): {m['cpu']}, "
           f"{m['cpu_count']} cores, {m['platform']}; table1 cold with the wall and with `UNLEARNBENCH_WALL=0`, one "
           "after the other.*\n",
           "| wall | jobs | load before | cold (s) | walled jobs | putting the wall up, median / max (s) |",
           "|---|---|---|---|---|---|"]
    for mode, r in doc["modes"].items():
        w = r["wall_setup_s"]
        setup = f"{w['median']} / {w['max']}" if w["n"] else "–"
        out.append(f"| {mode.replace('_', ' ')} | {r['jobs']} | {load(r)} | {r['cold_s']:.0f} | {w['n']} | {setup} |")
    j = doc["job_median_s"]
    out.append(f"\nOne unlearn job (`{doc['job']}`), rerun {doc['job_repeats']} times in each mode, alternating (load "
               f"before {', '.join(f'{v:.2f}' for v in doc['job_load_before'])}): median in-script time {j['wall']:.3f} s "
               f"with the wall, {j['no_wall']:.3f} s without: **{doc['job_added_s']:+.3f} s per job** (fork, Landlock and "
               f"seccomp set-up, moving the outputs). Cold table1 with ÷ without: {doc['ratio_cold']}, at loads "
               f"{doc['modes']['wall']['load_before'][0]:.2f} and {doc['modes']['no_wall']['load_before'][0]:.2f} before the "
               "two builds: the ratio mixes the machine's load with the wall; the alternating reruns of one job are the "
               "measure.")
    return "\n".join(out) + "\n"


def claims(paper: str) -> str:
    rec = record(paper)
    md = OUT / f"work_{paper}" / "results" / "papers" / f"{paper}.claims.md"
    if not md.exists():
        raise SystemExit(f"readme_tables: no claims build of {paper} ({md}); run `python3.11 bootstrap.py bench "
                         f"--only {paper}` first")
    body = md.read_text().split("\n", 1)[1].strip()  # without its title
    return header(rec) + body + "\n"


def real(paper: str) -> str:
    """The real tier's claims, then its tables (original accuracy, the attack's signal), from one cold build."""
    rec = record(f"real_{paper}")
    work = OUT / f"work_real_{paper}"
    md = work / "results" / "papers" / f"{paper}_real.claims.md"
    if not md.exists():
        raise SystemExit(f"readme_tables: no real-tier build of {paper} ({md}); run `python3.11 bootstrap.py bench --real "
                         f"--only {paper}` first")
    out = [header(rec, f", overlay `{rec['configfile']}`"), md.read_text().split("\n", 1)[1].strip()]
    for table in sorted((work / "cold_tables").glob("*.md")):
        late = "" if f"results/tables/{table.name}" in rec["targets"] else (
            "\n\n*Rendered from the runs of this build after it (one report job: the build's target was the claims alone).*")
        out.append("#" + table.read_text().strip() + late)  # its '# title' one level down
    return "\n\n".join(out) + "\n"


def ledger(paper: str) -> str:
    """The settings ledger: a config-only target (seconds), so it is built here from this checkout's config."""
    import subprocess

    target = f"results/papers/{paper}.ledger.md"
    proc = subprocess.run([str(Path(sys.executable).with_name("snakemake")), "--snakefile", str(REPO / "Snakefile"),
                           "--directory", str(REPO), "--cores", "1", "--", target], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"readme_tables: {target} failed:\n{proc.stderr[-2000:]}")
    body = (REPO / target).read_text()
    body = body[body.index("| setting |"):].strip()  # the table alone: the README's section says what it is
    return (f"*Generated by `snakemake {target}` from the configs and locks of this commit; paper-exact = the "
            f"`*_paper` rows, tuned = the locked values per tuning entry.*\n\n" + body + "\n")


ATTACK_LABELS = {"svc": "SVC", "entropy_lr": "entropy-LR", "prob_lr": "prob-LR"}


def recipe(name: str) -> str:
    path = OUT / f"recipe_{name}.json"
    if not path.exists():
        raise SystemExit(f"readme_tables: no record {path}; run benchmarks/recipe_signal.py --recipe {name} first")
    r = json.loads(path.read_text())
    if "commit" not in r:
        raise SystemExit(f"readme_tables: {path} names no commit; run benchmarks/recipe_signal.py --recipe {name} again")
    m, bars = r["machine"], r["bars"]
    attack = ATTACK_LABELS.get(r.get("attack", "svc"), r.get("attack"))  # records before --attack: SVC
    tree = "" if r.get("tree_clean", True) else " with uncommitted changes"
    out = [f"*Generated from `benchmarks/recipe_signal.py` at commit {r['commit']}{tree} ({r['date']}): {m['cpu']}, "
           f"{m['cpu_count']} cores, load average before the run {', '.join(f'{v:.2f}' for v in r['load_before'])} "
           f"(1, 5, 15 min), numerics {r['numerics']}, {len(r['runs'])} originals in {r['wall_s']:.0f} s. Recipe "
           f"`{r['recipe']}`, {r['model']} on `{r['dataset']}`, tuning cell `{r['scenario']}`, seeds {r['seeds']}; judged "
           f"on the {r['judged_on']}.*\n",
           f"| epochs | n | s per original | validation accuracy, all classes (mean ± std) | {attack} signal, lowest seed "
           f"| best attack, lowest seed | every seed ≥ {bars['attack_signal']:.2f} ({attack}) and ≥ {bars['accuracy']:.0f} % |",
           "|---|---|---|---|---|---|---|"]
    for row in r["summary"]:
        acc, sd = row["val_acc_all"]
        out.append(f"| {row['epochs']} | {row['n']} | {row['train_seconds_mean']:.0f} | {acc:.2f} ± {sd:.2f} | "
                   f"{row.get('attack_min', row.get('svc_min')):.3f} | {row['best_attack_min']:.3f} | {'yes' if row['meets'] else 'no'} |")
    return "\n".join(out) + "\n"


def block(kind: str, args: str) -> str:
    if kind == "recipe":
        return recipe(args)
    if kind == "ledger":
        return ledger(args)
    if kind == "claims":
        return claims(args)
    if kind == "real":
        return real(args)
    if kind == "wall":
        return wall()
    if kind == "cost":
        return cost(args.split())
    if kind == "budget":
        return budget(args.split())
    if kind == "numerics":
        return numerics()
    return table(kind, args)


def table(benchmark: str, study: str) -> str:
    md = OUT / f"work_{benchmark}" / "cold_tables" / f"{study}.md"  # as the cold build left it
    rec = OUT / f"{benchmark}.json"
    if not md.exists() or not rec.exists():
        raise SystemExit(f"readme_tables: no build of {benchmark} with {study} ({md}); run "
                         f"`python3.11 bootstrap.py bench --only {benchmark}` first")
    body = md.read_text().split("\n", 1)[1].strip()  # the rendered table without its '# title' line
    body = "\n".join(l for l in body.splitlines() if not l.startswith("Provenance:"))  # the header says it
    return header(json.loads(rec.read_text())) + body + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when a generated block is out of date")
    args = ap.parse_args()
    stale, missing = [], []

    def fill(m: re.Match) -> str:
        try:
            return m.group(1) + block(m.group(2), m.group(3) or "") + m.group(5)
        except SystemExit as e:  # no record yet: the block stays as it is, and the run says so
            missing.append(str(e))
            return m.group(0)

    for readme in [REPO / "README.md", *sorted((REPO / "workflow" / "papers").glob("*/README.md"))]:
        text = readme.read_text()
        new = BLOCK.sub(fill, text)
        if new != text:
            stale.append(readme.relative_to(REPO))
            if not args.check:
                readme.write_text(new)
    print(("out of date: " if args.check else "rewrote: ") + (", ".join(map(str, stale)) or "nothing"))
    for msg in missing:
        print(msg, file=sys.stderr)
    return 1 if (args.check and stale) or missing else 0


if __name__ == "__main__":
    sys.exit(main())
