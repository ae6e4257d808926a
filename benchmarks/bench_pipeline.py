#!/usr/bin/env python3
"""The pipeline's own cost: cold wall time vs the compute inside its jobs, and the no-op time.

For each benchmark (table1, and with --papers each paper's claims page with the tables of its claims and
of its paper-exact rows, one cold build: `headline()`), in a fresh work directory:
  cold_s        wall time of the first build
  compute_s     the single-thread compute inside its jobs: the sum of every stage's `seconds`
                (*.time.json sidecars: training, pruning, artefacts, unlearning)
  ratio         cold_s / (compute_s / cores): 1.0 = no pipeline overhead at all
  job_work_s    everything inside the jobs' scripts (loading, evaluation and MIA fits, writing files
                too), summed from the warm runner's trace (UNLEARNBENCH_WARM_TRACE)
  ratio_job_work  cold_s / (job_work_s / cores): what Snakemake and process start-up add
  jobs          number of jobs the build ran
  noop_s        wall time of a `snakemake` rerun that finds nothing to do
  noop_bootstrap_s  the same through `python3.11 bootstrap.py run`, answered from the build's fingerprint
  startup_s     `snakemake --version` (the floor every Snakemake invocation pays: its own imports)
  changed_s     (table1) after changing one setting of an untuned method (methods.retrain_indep.replica 1 -> 2)
plus the machine (CPU, cores, load average before and after), the numerics mode and the git commit.
Writes benchmarks/out/<name>.json and prints a Markdown table.

    python3.11 bootstrap.py bench                 # table1
    python3.11 bootstrap.py bench --papers        # + every paper's headline build (long)
    python3.11 bootstrap.py bench --only mugan    # one paper: mugan.claims.md and its headline tables
    python3.11 bootstrap.py bench --numerics      # table1 cold in portable and native mode, one after
                                                  # the other (benchmarks/out/numerics.json: the cost of portable)
    python3.11 bootstrap.py bench --real --only uisps   # a paper's real tier (workflow/papers/<p>/real.yaml):
                                                  # its headline build cold, with the overlay (real_<paper>.json)
    python3.11 bootstrap.py bench --wall          # table1 cold with the OS wall and without it
                                                  # (UNLEARNBENCH_WALL=0), back to back (benchmarks/out/wall.json)

A cold build longer than one sitting (a real page of hours) can be measured in segments, each one
uninterrupted Snakemake run in the same fresh work directory: `--until FILE...` builds only those files
of the build (Snakemake targets) and what they need, writes <name>.partial.json and stops; `--resume --until ...` adds
another segment; `--resume` builds the rest and writes the record with cold_s = the sum of the segments'
wall times (each segment's time, jobs, load and commit in `segments`). The segments must run the same
pipeline: between their commits only the bench harness, tests and Markdown may differ. The pause between
segments is not counted; a core left idle at a segment's end is.

    python3.11 bootstrap.py bench --real --only dau --until results/runs/fashion/resnet20/fashion/s0/dau_class/dau_real/metrics.json
    python3.11 bootstrap.py bench --real --only dau --resume

A finished build grown by a change that keeps its finished jobs (more seeds) can be measured as one more
segment: `--extend` runs the changed build in the same work directory, Snakemake reruns only what the
change touches, and the record's cold_s adds this run to the finished record's segments (its whole cold
build if it had none). Each segment keeps its own commit, so the record says which pipeline built what;
the earlier segments' jobs the change made obsolete (say, an evaluation against another seed) stay counted.

    python3.11 bootstrap.py bench --real --only dau --extend
"""

from __future__ import annotations

import argparse
import hashlib
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


def run(work: Path, cores: int, targets: list[str], *extra: str, env: dict | None = None) -> tuple[float, str]:
    cmd = [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(work), "--cores", str(cores),
           "--workflow-profile", str(REPO / "workflow" / "profiles" / "default"), *extra, "--", *targets]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
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
    """Jobs a Snakemake run finished (its progress line counts the whole DAG under --until)."""
    return len(re.findall(r"^Finished jobid: \d+", log, re.M))


BUILD_NEUTRAL = ("benchmarks/", "tests/")  # with *.md: files no rule reads


def build_changes(a: str, b: str) -> list[str]:
    """Files between two commits that a build can read (all but the bench harness, tests and Markdown)."""
    diff = subprocess.run(["git", "-C", str(REPO), "diff", "--name-only", a, b], capture_output=True, text=True)
    if diff.returncode:
        return [f"(git diff {a} {b} failed)"]
    return [f for f in diff.stdout.split() if not f.startswith(BUILD_NEUTRAL) and not f.endswith(".md")]


def machine() -> dict:
    cpu = platform.processor()
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}


def results_listing(work: Path) -> str:
    """A fingerprint of the files under a work directory's results/ (which jobs have run)."""
    names = sorted(str(f.relative_to(work)) for f in (work / "results").rglob("*") if f.is_file())
    return hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]


def finished_segments(name: str, out: Path) -> list[dict]:
    """A finished build's segments, for --extend: its record's `segments`, or its whole cold build as one."""
    path, work = out / f"{name}.json", out / f"work_{name}"
    if not path.exists() or not work.is_dir():
        sys.exit(f"bench: nothing to extend for {name} ({path} or {work} is missing); build it first without --extend")
    try:
        rec = json.loads(path.read_text())
        return rec.get("segments") or [{"seconds": rec["cold_s"], "jobs": rec["jobs"], "until": None,
                                        "commit": rec["commit"], "date": rec["date"],
                                        "load_before": rec["load_before"], "load_after": rec.get("load_after")}]
    except (ValueError, KeyError, AttributeError) as err:
        sys.exit(f"bench: {path} is not a bench record ({type(err).__name__}: {err}); build {name} again without --extend")


def segments_so_far(name: str, out: Path, commit: str, resume: bool, extend: bool = False) -> list[dict]:
    """The segments already built of a cold build measured in parts (empty: a fresh build)."""
    if extend:
        return finished_segments(name, out)
    partial = out / f"{name}.partial.json"
    if not resume:
        partial.unlink(missing_ok=True)
        return []
    if not partial.exists():
        sys.exit(f"bench: nothing to resume for {name} ({partial} is missing); start it with --until FILE...")
    done = json.loads(partial.read_text())
    changed = build_changes(done["commit"], commit) if done["commit"] != commit else []
    if changed:
        sys.exit(f"bench: {name}'s first segment was built at commit {done['commit']}, HEAD is {commit} and changes "
                 f"{changed[0]} (and {len(changed) - 1} more files a build reads); one cold build is one pipeline: "
                 f"check {done['commit']} out, or start again without --resume")
    if done.get("results_listing") and done["results_listing"] != results_listing(out / f"work_{name}"):
        sys.exit(f"bench: {out / f'work_{name}'} changed since segment {len(done['segments'])} ended (an interrupted or "
                 f"failed run leaves jobs that no segment timed); start again without --resume")
    return done["segments"]


def bench(name: str, targets: list[str], cores: int, out: Path, change: bool, mode: str = "portable",
          env: dict | None = None, extra: tuple[str, ...] = (), commit: str = "", until: tuple[str, ...] = (),
          resume: bool = False, extend: bool = False) -> dict | None:
    """One cold build and its measures; with `until`, one segment of it (None: more is to --resume)."""
    work = out / f"work_{name}"
    segments = segments_so_far(name, out, commit, resume, extend)
    if not segments:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
    load0 = os.getloadavg()
    trace = work / "warm_trace.jsonl"  # every job's script time, as the warm runner measured it
    numerics = [*extra, f"--config", f"numerics={mode}"]
    # a segment builds its files as Snakemake's targets (Snakemake's own --until stalled on this DAG:
    # "Out of jobs ready to be started", its issue #823, with rules of one output pattern)
    secs, log = run(work, cores, list(until) or targets, *numerics, env={"UNLEARNBENCH_WARM_TRACE": str(trace), **(env or {})})
    segments.append({"seconds": round(secs, 1), "jobs": jobs_done(log), "until": list(until) or None, "commit": commit,
                     "date": time.strftime("%Y-%m-%d %H:%M"), "load_before": [round(v, 2) for v in load0],
                     "load_after": [round(v, 2) for v in os.getloadavg()]})
    if until:
        (out / f"{name}.partial.json").write_text(json.dumps(
            {"name": name, "targets": targets, "commit": segments[0]["commit"], "segments": segments,
             "results_listing": results_listing(work)}, indent=2) + "\n")
        print(f"{name}: segment {len(segments)} ({' '.join(until)}): {segments[-1]['jobs']} jobs in {secs:.0f} s; "
              f"the rest: the same command with --resume instead of --until", flush=True)
        return None
    cold, log_jobs = sum(s["seconds"] for s in segments), sum(s["jobs"] for s in segments)
    load0 = segments[0]["load_before"]
    # the cold build's tables, kept apart: the changed-setting run below rewrites results/tables
    if (work / "results" / "tables").is_dir():  # (a claims target writes no table of its own)
        shutil.rmtree(work / "cold_tables", ignore_errors=True)  # (--extend: the finished build's copy)
        shutil.copytree(work / "results" / "tables", work / "cold_tables")
    compute, by_kind = compute_seconds(work)
    scripts = [json.loads(l) for l in trace.read_text().splitlines()] if trace.exists() else []
    job_work = sum(r["seconds"] for r in scripts)
    noop, _ = run(work, cores, targets, *numerics)
    t0 = time.perf_counter()
    subprocess.run([SNAKEMAKE, "--version"], capture_output=True)
    startup = time.perf_counter() - t0
    # the README's command: bootstrap.py run records the build's fingerprint, the same call again answers
    # from it without Snakemake (workflow/unlearnbench/infra/uptodate.py)
    noop_boot = None
    if mode == "portable" and not extra:  # the config's default: bootstrap.py's fast path takes no --config
        boot = [shutil.which("python3.11") or sys.executable, str(REPO / "bootstrap.py"), "run", "--directory", str(work), *targets]
        subprocess.run(boot, capture_output=True, check=True)
        t0 = time.perf_counter()
        fast = subprocess.run(boot, capture_output=True, text=True, check=True)
        noop_boot = round(time.perf_counter() - t0, 2)
        if "nothing to be done" not in fast.stdout:
            sys.exit(f"bootstrap.py did not answer from the fingerprint:\n{fast.stdout[-2000:]}")
    by_script: dict[str, list[float]] = {}
    for r in scripts:  # Snakemake runs a copy of the script named tmp<random>.<rule script>
        by_script.setdefault(re.sub(r"^tmp[^.]*\.", "", r["script"]), []).append(r["seconds"])
    res = {"script_mean_s": {k: [round(sum(v) / len(v), 3), len(v)] for k, v in sorted(by_script.items())},
           "name": name, "targets": targets, "cores": cores, "cold_s": round(cold, 1), "compute_s": round(compute, 1),
           "compute_by_stage_s": {k: round(v, 1) for k, v in by_kind.items()}, "jobs": log_jobs,
           "ratio": round(cold / (compute / cores), 2) if compute else None, "noop_s": round(noop, 2),
           "job_work_s": round(job_work, 1), "jobs_traced": len(scripts),
           "ratio_job_work": round(cold / (job_work / cores), 2) if job_work else None,
           "noop_bootstrap_s": noop_boot, "warm_runner": os.environ.get("UNLEARNBENCH_WARM", "1") != "0",
           "startup_s": round(startup, 2), "load_before": [round(v, 2) for v in load0], "numerics": mode}
    if len(segments) > 1:
        res["segments"] = segments
    (out / f"{name}.partial.json").unlink(missing_ok=True)
    if change:  # one setting of an untuned method (a tuned method's settings are held by the lock)
        overlay = work / "changed.yaml"
        overlay.write_text(yaml.safe_dump({"methods": {"retrain_indep": {"method": "retrain", "replica": 2}}}))
        res["changed_s"] = round(run(work, cores, targets, *numerics, f"--configfile={overlay}")[0], 1)
    res["load_after"] = [round(v, 2) for v in os.getloadavg()]
    return res


def headline(paper: str, config: Path | None = None) -> list[str]:
    """A paper's benchmark: its claims page and the tables of the studies its claims read or that hold its
    paper-exact (`*_paper`) rows, in one cold build. `paper` is the `papers:` entry, `config` the file that
    declares it (default: workflow/papers/<paper>/study.yaml). (The whole index page of CLUE or UNSIR is
    hours on 2 cores; `snakemake results/papers/<paper>.md` builds it.)"""
    doc = yaml.safe_load((config or REPO / "workflow" / "papers" / paper / "study.yaml").read_text())
    entry = doc["papers"][paper]
    studies = {c["study"] for c in entry.get("claims", []) if not c.get("unavailable")}
    studies |= {s for s, spec in doc.get("studies", {}).items() if s in entry["studies"]
                and any(str(m).endswith("_paper") for m in spec.get("methods", []))}
    return [f"results/papers/{paper}.claims.md"] + [f"results/tables/{s}.md" for s in sorted(studies)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--papers", action="store_true", help="also every paper's headline build (claims page and its tables)")
    ap.add_argument("--only", nargs="*", default=None, help="benchmarks to run (table1 and/or paper names)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "out"))
    ap.add_argument("--numerics", action="store_true", help="table1 cold in portable and in native mode (numerics.json)")
    ap.add_argument("--wall", action="store_true", help="table1 cold with and without the OS wall (wall.json)")
    ap.add_argument("--real", action="store_true", help="each paper's real tier (real.yaml) cold: its headline build (real_<paper>.json)")
    ap.add_argument("--until", nargs="+", default=(), metavar="FILE",
                    help="a segment of a cold build: only these files of it and what they need (then --resume)")
    ap.add_argument("--resume", action="store_true",
                    help="go on with a cold build started with --until: the rest, or with --until the next segment")
    ap.add_argument("--extend", action="store_true",
                    help="go on from a finished build after a change that keeps its jobs (more seeds): one more segment")
    args = ap.parse_args()
    if (args.until or args.resume or args.extend) and not (args.only and len(args.only) == 1):
        ap.error("--until / --resume / --extend measure one benchmark in segments: name it with --only NAME")
    if args.extend and (args.until or args.resume):
        ap.error("--extend adds one last segment to a finished build: no --until or --resume with it")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    papers = sorted(p.name for p in (REPO / "workflow" / "papers").iterdir() if (p / "study.yaml").exists())
    plan = {"table1": ["results/tables/table1.csv"]}
    plan.update({p: headline(p) for p in papers})
    names = args.only if args.only else ["table1"] + (papers if args.papers else [])
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    if args.numerics:
        return bench_numerics(args.cores, out, commit)
    if args.wall:
        return bench_wall(args.cores, out, commit)
    if args.real:
        for p in (args.only or [p for p in papers if (REPO / "workflow" / "papers" / p / "real.yaml").exists()]):
            overlay = REPO / "workflow" / "papers" / p / "real.yaml"
            res = bench(f"real_{p}", headline(f"{p}_real", overlay), args.cores, out, change=False,
                        extra=(f"--configfile={overlay}",), commit=commit, until=tuple(args.until), resume=args.resume,
                        extend=args.extend)
            if res is None:
                continue
            res.update(machine=machine(), commit=commit, date=time.strftime("%Y-%m-%d"),
                       configfile=str(overlay.relative_to(REPO)))
            (out / f"real_{p}.json").write_text(json.dumps(res, indent=2) + "\n")
            print(f"real {p}: cold {res['cold_s']} s, {res['jobs']} jobs, load before {res['load_before']}", flush=True)
        return None
    rows = []
    for name in names:
        res = bench(name, plan[name], args.cores, out, change=name == "table1" and not (args.until or args.resume or args.extend),
                    commit=commit, until=tuple(args.until), resume=args.resume, extend=args.extend)
        if res is None:
            continue
        res.update(machine=machine(), commit=commit, date=time.strftime("%Y-%m-%d"))
        (out / f"{name}.json").write_text(json.dumps(res, indent=2) + "\n")
        rows.append(res)
        print(f"{name}: cold {res['cold_s']} s, compute {res['compute_s']} s, ratio {res['ratio']}, "
              f"job work {res['job_work_s']} s (ratio {res['ratio_job_work']}), "
              f"noop {res['noop_s']} s (bootstrap {res['noop_bootstrap_s']} s), {res['jobs']} jobs", flush=True)
    print("\n| benchmark | jobs | cold (s) | in-job compute (s) | cold ÷ (compute ÷ cores) | all job work (s) | "
          "cold ÷ (work ÷ cores) | no-op: bootstrap.py (s) | no-op: snakemake (s) | snakemake --version (s) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {r['jobs']} | {r['cold_s']} | {r['compute_s']} | {r['ratio']} | {r['job_work_s']} | "
              f"{r['ratio_job_work']} | {r['noop_bootstrap_s']} | {r['noop_s']} | {r['startup_s']} |")


def bench_wall(cores: int, out: Path, commit: str, repeats: int = 7) -> None:
    """What the OS wall costs: table1 cold with and without it, back to back, then one unlearn job
    rerun `repeats` times in each mode, alternating (its in-script time from the warm trace)."""
    res = {}
    for mode, env in (("wall", {}), ("no_wall", {"UNLEARNBENCH_WALL": "0"})):
        res[mode] = bench(f"table1_{mode}", ["results/tables/table1.csv"], cores, out, change=False, env=env)
        setups = [json.loads(f.read_text()).get("wall", {}).get("setup_seconds")
                  for f in (out / f"work_table1_{mode}" / "results").rglob("*.prov.json")]
        setups = sorted(x for x in setups if x is not None)
        res[mode]["wall_setup_s"] = {"n": len(setups), "median": setups[len(setups) // 2] if setups else None,
                                     "max": setups[-1] if setups else None}
        print(f"{mode}: cold {res[mode]['cold_s']} s, load before {res[mode]['load_before']}", flush=True)
    work = out / "work_table1_wall"
    job = str(sorted((work / "results" / "runs").rglob("finetune/model.safetensors"))[0].relative_to(work))
    per_job: dict[str, list[float]] = {"wall": [], "no_wall": []}
    load0 = os.getloadavg()
    for _ in range(repeats):
        for mode, env in (("wall", {}), ("no_wall", {"UNLEARNBENCH_WALL": "0"})):
            trace = work / f"trace_{mode}.jsonl"
            trace.unlink(missing_ok=True)
            run(work, 1, [job], "--force", env={"UNLEARNBENCH_WARM_TRACE": str(trace), **env})
            per_job[mode] += [json.loads(l)["seconds"] for l in trace.read_text().splitlines()]
    med = {k: sorted(v)[len(v) // 2] for k, v in per_job.items()}
    doc = {"modes": res, "ratio_cold": round(res["wall"]["cold_s"] / res["no_wall"]["cold_s"], 3),
           "job": job, "job_repeats": repeats, "job_s": {k: [round(x, 3) for x in v] for k, v in per_job.items()},
           "job_median_s": {k: round(v, 3) for k, v in med.items()}, "job_added_s": round(med["wall"] - med["no_wall"], 3),
           "job_load_before": [round(v, 2) for v in load0],
           "machine": machine(), "commit": commit, "date": time.strftime("%Y-%m-%d")}
    (out / "wall.json").write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps({k: doc[k] for k in ("ratio_cold", "job_median_s", "job_added_s")}), res["wall"]["wall_setup_s"])


def bench_numerics(cores: int, out: Path, commit: str) -> None:
    """table1 cold in both numerics modes, back to back on the same machine: the cost of portable."""
    res = {}
    for mode in ("portable", "native"):
        res[mode] = bench(f"table1_{mode}", ["results/tables/table1.csv"], cores, out, change=False, mode=mode)
        print(f"{mode}: cold {res[mode]['cold_s']} s, in-job compute {res[mode]['compute_s']} s, "
              f"load before {res[mode]['load_before']}", flush=True)
    doc = {"modes": res, "ratio_cold": round(res["portable"]["cold_s"] / res["native"]["cold_s"], 2),
           "ratio_compute": round(res["portable"]["compute_s"] / res["native"]["compute_s"], 2),
           "machine": machine(), "commit": commit, "date": time.strftime("%Y-%m-%d")}
    (out / "numerics.json").write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\n| numerics | cold (s) | in-job compute (s) | jobs | load before |\n|---|---|---|---|---|")
    for mode, r in res.items():
        print(f"| {mode} | {r['cold_s']} | {r['compute_s']} | {r['jobs']} | {r['load_before'][0]} |")
    print(f"portable / native: cold {doc['ratio_cold']}, compute {doc['ratio_compute']}")


if __name__ == "__main__":
    main()
