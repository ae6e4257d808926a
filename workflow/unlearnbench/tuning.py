"""Hyperparameter tuning and the hyperparameter lock (config group `tuning`, README "Tuning").

Protocol. A tuning entry names one cell no table reports (its dataset, model, training recipe,
scenario and at least three seeds), a budget (the same number of trials for every method) and a
grid per method instance. Trials are ordinary method instances (`tune.<entry>.<instance>.<i>`) run
by the ordinary rules. Each trial is scored on validation data and the forget set only, never on
test data:

  objective = mean over seeds of mean |trial - retrain| over acc_val (validation samples of the
              retained classes) and acc_val_forget (class forgetting: validation samples of the
              forgotten classes) or acc_forget (random forgetting: the forget set)

Ties: a trial whose objective is within one validation sample per seed of the best one (one sample
of the smallest of the objective's sets, in each seed: `resolution`) is as good as the best; among
those the entry's `prefer` values win (the paper's setting, where the paper states one), then the
trial whose model moved least from the original (mean `dist_original`), then grid order.

Lock. Tables are built from the values a tuning chose and committed, never from a tuning run of
the same build: `<config file>.lock.yaml` beside the config file that defines the entry
(config.lock.yaml for config.yaml's, study.lock.yaml in each paper folder). Each record holds the
entry's fingerprint (its cell, grids and the tuned instances' other settings): a config whose entry
differs from its lock (another dataset, grid or recipe) stops at start-up and names the command that
re-derives it. `python3.11 bootstrap.py retune ENTRY… [--write]` runs rule tune and prints the
difference against the lock.

Scope. A tuned instance (`tune: <entry>` or a list of entries) runs in a table cell with the values
of the one entry whose setup (dataset, model, training) and scenario type (class / random) match
the cell; `also_for` lists further setups an entry's values are carried to (stated in the paper's
README). A cell no entry covers is a start-up error. `tune_as: <instance>` takes the values chosen
for another instance (an ablation or sweep row that must share its learning rate).

Torch-free: the DAG is built from it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

from .configfile import check_config_files
from .errors import UserError
from .io import read_json, write_json, write_text
from .methods import coerce, create_method, get_method
from .runtime import machine
from .studies import study_setups

MIN_SEEDS = 3
LOCK_SUFFIX = ".lock.yaml"
OBJECTIVE = ("mean over seeds of mean |trial - retrain| over validation accuracies (retained, forgotten "
             "classes) or the forget set (random forgetting)")
TIE_RULE = ("within one validation sample per seed of the best objective; then the entry's `prefer` values, "
            "then the smallest mean dist_original, then grid order")
_COUNT = {"acc_val": "n_val", "acc_val_forget": "n_val_forget", "acc_forget": "n_forget"}


def _need(group: dict, name: str, what: str, where: str) -> dict:
    if name not in group:
        raise UserError(f"{where} names unknown {what} {name!r}; defined: {', '.join(sorted(group)) or '(none)'}")
    return group[name]


def entry_setup(t: dict[str, Any]) -> dict[str, str]:
    return {k: t[k] for k in ("dataset", "model", "training")}


def tuning_seeds(t: dict[str, Any]) -> list[int]:
    """The seeds of a tuning entry (the objective is their mean)."""
    return [int(v) for v in t["seed"]] if isinstance(t["seed"], list) else [int(t["seed"])]


RESERVED = ("tune", "tune_as")  # instance keys that are not hyperparameters


def entries_of(spec: dict[str, Any]) -> list[str]:
    """The tuning entries a method instance names (`tune: entry` or a list)."""
    t = spec.get("tune")
    return [] if not t else [t] if isinstance(t, str) else list(t)


def hyperparameters(spec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if k not in RESERVED}


def tuning_trials(config: dict[str, Any], name: str) -> dict[str, list[tuple[str, dict]]]:
    """{method instance: [(trial instance name, overrides)]} of entry `name`: `budget` points of each
    instance's grid (the same number for every method), drawn with a fixed seed."""
    t = config["tuning"][name]
    out = {}
    for inst, grid in t["methods"].items():
        keys = sorted(grid)
        points = [dict(zip(keys, vals)) for vals in itertools.product(*(grid[k] for k in keys))]
        if len(points) < t["budget"]:
            raise UserError(f"tuning.{name}.methods.{inst}: its grid has {len(points)} points, fewer than the "
                            f"budget {t['budget']} every method gets; add values or lower the budget")
        random.Random(f"{name}/{inst}").shuffle(points)
        out[inst] = [(f"tune.{name}.{inst}.{i}", p) for i, p in enumerate(points[: t["budget"]])]
    return out


def tuning_runs(config: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """Every trial run of an entry plus its retrain reference, per seed (each seed's retrain first)."""
    t = config["tuning"][name]
    gold = next(n for n, spec in config["methods"].items() if spec["method"] == "retrain" and not spec.get("replica"))
    runs = []
    for seed in tuning_seeds(t):
        cell = {**entry_setup(t), "scenario": t["scenario"], "seed": seed}
        runs.append({**cell, "method": gold, "instance": gold, "overrides": {}})
        for inst, trials in tuning_trials(config, name).items():
            runs += [{**cell, "method": trial, "instance": inst, "overrides": o} for trial, o in trials]
    return runs


def fingerprint(config: dict[str, Any], name: str) -> str:
    """What the values chosen by entry `name` depend on: the entry itself, the config blocks of its
    cell and the tuned instances' own settings. A lock is valid for exactly this fingerprint."""
    t = config["tuning"][name]
    model = config["models"][t["model"]]
    blocks = {
        "entry": {k: v for k, v in t.items() if k != "also_for"},
        "dataset": config["datasets"][t["dataset"]], "training": config["training"][t["training"]],
        "model": model, "base_model": config["models"].get(model.get("base", ""), None),
        "scenario": config["scenarios"][t["scenario"]],
        "instances": {i: hyperparameters(config["methods"][i]) for i in sorted(t["methods"])},
    }
    return hashlib.sha256(json.dumps(blocks, sort_keys=True, default=str).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- start-up checks
def add_tuning_trials(config: dict[str, Any]) -> None:
    """In place: every tuning trial becomes a method instance (so the ordinary rules run it), after
    checking each entry: enough seeds, an existing cell, and grids that never change what a method
    reads (its access or which artefacts it needs)."""

    for name, t in config.get("tuning", {}).items():
        where = f"tuning.{name}"
        if len(set(tuning_seeds(t))) < MIN_SEEDS:
            raise UserError(f"{where}.seed: tune on at least {MIN_SEEDS} seeds (one seed's validation split holds "
                            f"a few samples of a class and ties settings), e.g. seed: [100, 101, 102]")
        for inst, grid in t["methods"].items():  # values as the method reads them ("1e-3" -> 0.001)
            cls = get_method(_need(config["methods"], inst, "method instance", where)["method"])
            for k, values in grid.items():
                if k not in cls.defaults:
                    raise UserError(f"{where}.methods.{inst}: method {cls.name!r} has no hyperparameter {k!r}")
                grid[k] = [coerce(v, cls.defaults[k], f"{where}.methods.{inst}.{k}") for v in values]
            for k, v in t.get("prefer", {}).get(inst, {}).items():
                if k not in grid or coerce(v, cls.defaults[k], f"{where}.prefer.{inst}.{k}") not in grid[k]:
                    raise UserError(f"{where}.prefer.{inst}.{k}: {v!r} is not among the grid's values of {k}")
        for inst in t.get("prefer", {}):
            if inst not in t["methods"]:
                raise UserError(f"{where}.prefer: {inst!r} has no grid in this entry")
        _need(config["scenarios"], t["scenario"], "scenario", where)
        for st in [entry_setup(t)] + list(t.get("also_for", [])):
            _need(config["datasets"], st["dataset"], "dataset", where)
            _need(config["models"], st["model"], "model", where)
            _need(config["training"], st["training"], "training recipe", where)
        for inst, trials in tuning_trials(config, name).items():
            base = config["methods"][inst]
            ref = create_method(base)
            for trial, overrides in trials:
                spec = {**hyperparameters(base), **overrides}
                try:
                    m = create_method(spec)
                except UserError as e:
                    raise UserError(f"{where}.methods.{inst}: {e}") from None
                if m.access() != ref.access() or set(m.needs()) != set(ref.needs()):
                    raise UserError(f"{where}.methods.{inst}: tuning {sorted(overrides)} changes what the method reads "
                                    "(its data access or which artefacts it needs); tune other hyperparameters")
                config["methods"][trial] = spec
    for inst, spec in config["methods"].items():
        if spec.get("tune_as") and not entries_of(spec):
            raise UserError(f"methods.{inst}: tune_as needs tune (the entries whose values it takes)")
        as_ = spec.get("tune_as") or inst
        for e in entries_of(spec):
            t = _need(config.get("tuning", {}), e, "tuning entry", f"methods.{inst}.tune")
            if as_ not in t["methods"]:
                raise UserError(f"methods.{inst}: tuning entry {e!r} has no grid for {as_}")
            _check_carried(config, inst, spec, as_, e)
    for study, s in config["studies"].items():  # a tuned value is never judged on a model it was tuned on
        for inst in s["methods"]:
            for e in entries_of(config["methods"][inst]):
                t = config["tuning"][e]
                both = sorted(set(tuning_seeds(t)) & set(s["seeds"]))
                if both and entry_setup(t) in study_setups(s):
                    raise UserError(f"studies.{study} reports seed {both[0]} of {t['dataset']}/{t['model']}, a seed "
                                    f"tuning entry {e!r} tunes {inst} on; tune on seeds no table reports")


def _check_carried(config: dict[str, Any], inst: str, spec: dict[str, Any], as_: str, entry: str) -> None:
    """An instance that takes another's tuned values (tune_as) must accept them and read the same data."""

    if as_ == inst:
        return
    ref = create_method(hyperparameters(spec))
    for _, overrides in tuning_trials(config, entry)[as_]:
        try:
            m = create_method({**hyperparameters(spec), **overrides})
        except UserError as e:
            raise UserError(f"methods.{inst}: the tuned values of {as_} do not fit it ({e})") from None
        if m.access() != ref.access() or set(m.needs()) != set(ref.needs()):
            raise UserError(f"methods.{inst}: the tuned values of {as_} change what it reads")


def entry_for_cell(config: dict[str, Any], inst: str, setup: dict[str, str], scenario: str) -> str:
    """The tuning entry whose values instance `inst` runs with in a cell: the one entry (of those it
    names) tuned on, or carried to, this setup with the same scenario type."""
    kind = config["scenarios"][scenario]["type"]
    names = entries_of(config["methods"][inst])
    match = [e for e in names if config["scenarios"][config["tuning"][e]["scenario"]]["type"] == kind
             and setup in [entry_setup(config["tuning"][e])] + [dict(s) for s in config["tuning"][e].get("also_for", [])]]
    if len(match) != 1:
        where = f"{setup['dataset']}/{setup['model']}/{setup['training']} with {kind} forgetting"
        if not match:
            raise UserError(f"methods.{inst} is tuned ({', '.join(names)}) but no entry covers {where}: add a tuning "
                            "entry on that setup and scenario type (or list the setup under an entry's also_for)")
        raise UserError(f"methods.{inst}: tuning entries {', '.join(match)} all cover {where}; keep one")
    return match[0]


# --------------------------------------------------------------------------- the lock
def lock_path(config_file: str | os.PathLike) -> Path:
    p = Path(config_file)
    return p.with_name(p.stem + LOCK_SUFFIX)


def lock_homes(files: list[str | os.PathLike], tuning: dict[str, Any]) -> dict[str, Path]:
    """{entry: its lock file}: beside the last of `files` (in load order) that defines the entry."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    homes = {}
    for f in files:
        with open(f, encoding="utf-8") as fh:
            data = yaml.load(fh, Loader=loader) or {}
        for name in (data.get("tuning") or {}) if isinstance(data, dict) else {}:
            homes[name] = lock_path(f)
    return {n: homes[n] for n in tuning if n in homes}


def read_lock(path: str | os.PathLike) -> dict[str, Any]:
    import yaml

    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as fh:
        try:
            data = yaml.safe_load(fh) or {}
        except yaml.YAMLError as e:
            raise UserError(f"{path} is not valid YAML ({str(e).splitlines()[0]}); restore it from git") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: a lock file maps tuning entries to their chosen values; restore it from git")
    return data


def locked_values(config: dict[str, Any], homes: dict[str, Path], entry: str) -> dict[str, Any]:
    """The lock record of `entry`, checked against the config's entry (its fingerprint)."""
    fix = f"python3.11 bootstrap.py retune {entry} --write` (with the same --configfile overlays"
    path = homes.get(entry)
    record = read_lock(path).get(entry) if path else None
    if record is None:
        raise UserError(f"tuning entry {entry!r} has no locked values{f' in {path}' if path else ''}: derive them "
                        f"with `{fix}), then commit the lock")
    if record.get("fingerprint") != fingerprint(config, entry):
        raise UserError(f"tuning entry {entry!r} differs from what {path} was locked for (its cell, grids or the tuned "
                        f"instances' settings changed): re-derive it with `{fix})")
    return record


def resolve_cell(config: dict[str, Any], homes: dict[str, Path], inst: str, setup: dict[str, str],
                 scenario: str, unlocked: bool = False) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(the method spec a cell runs, how its tuned values were obtained or None). `unlocked`
    (UNLEARNBENCH_UNLOCKED=1: re-deriving, or planning an overlay whose lock does not exist yet):
    a cell without valid locked values runs its config values, marked so in unlearn.json."""
    spec = config["methods"][inst]
    if not entries_of(spec):
        return spec, None
    entry = entry_for_cell(config, inst, setup, scenario)
    try:
        record = locked_values(config, homes, entry)
    except UserError:
        if not unlocked:
            raise
        return hyperparameters(spec), {"entry": entry, "unlocked": True}
    as_ = spec.get("tune_as") or inst
    if as_ not in record.get("chosen", {}):
        raise UserError(f"the lock of tuning entry {entry!r} has no values for {as_}: re-derive it with "
                        f"`python3.11 bootstrap.py retune {entry} --write`")
    chosen = record["chosen"][as_]
    return {**hyperparameters(spec), **chosen}, {"entry": entry, "instance": as_, "fingerprint": record["fingerprint"],
                                                "values": chosen, "lock": str(homes[entry])}


# --------------------------------------------------------------------------- rule tune (the job)
def objective(m: dict[str, float], r: dict[str, float]) -> tuple[float, list[str]]:
    keys = ["acc_val"] + (["acc_val_forget"] if not math.isnan(r.get("acc_val_forget", math.nan)) else ["acc_forget"])
    gaps = [abs(m[k] - r[k]) for k in keys]
    return (sum(gaps) / len(gaps) if not any(math.isnan(g) for g in gaps) else math.inf), keys


def resolution(counts: dict[str, int], keys: list[str]) -> float:
    """How far one sample of the smallest set moves the objective (accuracy points over len(keys))."""
    n = min(counts.get(_COUNT[k], 0) for k in keys)
    return 100.0 / n / len(keys) if n else math.inf


def choose(trials: list[dict[str, Any]], tol: float, prefer: dict[str, Any]) -> tuple[int, list[int], str]:
    """(index of the chosen trial, indices tied with the best, what decided) by the tie rule."""
    best = min(t["objective"] for t in trials)
    tied = [i for i, t in enumerate(trials) if t["objective"] <= best + tol + 1e-9]
    if len(tied) == 1:
        return tied[0], tied, "best objective"
    pref = [i for i in tied if prefer and all(trials[i]["overrides"].get(k) == v for k, v in prefer.items())]
    pool, how = (pref, "tie: the preferred (paper's) values") if pref else (tied, "tie")
    if len(pool) == 1:
        return pool[0], tied, how
    dist = [trials[i].get("dist_original", math.inf) for i in pool]
    if any(math.isfinite(d) for d in dist):  # the preferred values fix some settings; the rest: the smallest change
        return pool[dist.index(min(dist))], tied, f"{how}: the smallest change to the model (dist_original)"
    return pool[0], tied, f"{how}: grid order"


def run_tune(name: str, runs: list[dict[str, Any]], metric_files: list[str], out_json: str,
             fingerprint: str = "", prefer: dict[str, dict] | None = None, numerics: str = "portable") -> None:
    """`runs` as tuning_runs lists them: per seed its retrain, then that seed's trials."""

    records = []
    for r, f in zip(runs, metric_files):
        doc = read_json(f)
        records.append({**r, "metrics": doc["metrics"], "counts": {k: doc.get(k, 0) for k in _COUNT.values()}})
    gold = records[0]["method"]
    refs = {r["seed"]: r for r in records if r["method"] == gold}  # each seed's retrain
    seeds = sorted(refs)
    scored: dict[str, dict[str, dict]] = {}  # instance -> trial -> {overrides, per seed}
    for r in records:
        if r["method"] == gold:
            continue
        ref = refs[r["seed"]]
        score, keys = objective(r["metrics"], ref["metrics"])
        t = scored.setdefault(r["instance"], {}).setdefault(r["method"], {"overrides": r["overrides"], "seeds": []})
        t["seeds"].append({"seed": r["seed"], "objective": score, "resolution": resolution(ref["counts"], keys),
                           "dist_original": r["metrics"].get("dist_original", math.nan),
                           **{k: r["metrics"][k] for k in keys}})
    chosen, trials, decided = {}, {}, {}
    for inst, by_trial in scored.items():
        ts = []
        for t in by_trial.values():
            per = t["seeds"]
            mean = {k: sum(p[k] for p in per) / len(per) for k in per[0] if k != "seed"}
            ts.append({"overrides": t["overrides"], **mean, "per_seed": per})
        tol = ts[0]["resolution"]  # the same validation split for every trial of a seed
        i, tied, how = choose(ts, tol, (prefer or {}).get(inst, {}))
        for j, t in enumerate(ts):
            t["tied_with_best"] = j in tied
        trials[inst], chosen[inst] = ts, ts[i]["overrides"]
        decided[inst] = {"rule": how, "tied": len(tied), "tolerance": tol}
        print(f"tuning {name}: {inst} -> {chosen[inst]} (objective {ts[i]['objective']:.3f}, best "
              f"{min(t['objective'] for t in ts):.3f}, {len(tied)} of {len(ts)} trials within {tol:.2f}: {how})")
    first = records[0]
    cell = {**{k: first[k] for k in ("dataset", "model", "training", "scenario")}, "seeds": seeds}
    write_json(out_json, {"name": name, "cell": cell, "fingerprint": fingerprint, "objective": OBJECTIVE,
                          "tie_rule": TIE_RULE, "numerics": numerics, "chosen": chosen, "decided": decided,
                          "trials": trials})


# --------------------------------------------------------------------------- lock maintenance
def difference(result: dict[str, Any], record: dict[str, Any] | None) -> list[str]:
    """Lines naming every value a tuning result chose differently from the lock (empty: the same)."""
    name = result["name"]
    if record is None:
        return [f"{name}: not locked yet"]
    out = []
    if record.get("fingerprint") != result.get("fingerprint"):
        out.append(f"{name}: the lock was made for another version of the entry (fingerprint "
                   f"{record.get('fingerprint')} -> {result.get('fingerprint')})")
    for inst in sorted(set(result["chosen"]) | set(record.get("chosen", {}))):
        new, old = result["chosen"].get(inst), record.get("chosen", {}).get(inst)
        if new != old:
            out.append(f"{name}.{inst}: lock {old} -> tuned {new}")
    return out


def lock_record(result: dict[str, Any], cpu: str) -> dict[str, Any]:
    return {"cell": result["cell"], "fingerprint": result["fingerprint"], "tie_rule": result["tie_rule"],
            "derived_on": f"{cpu}, numerics {result.get('numerics', 'portable')}", "chosen": result["chosen"],
            "decided": {i: f"{d['rule']} ({d['tied']} tied within {d['tolerance']:.2f})" for i, d in result["decided"].items()}}


def write_lock(path: str | os.PathLike, records: dict[str, dict[str, Any]]) -> None:
    """Merge `records` into the lock file `path` (entries sorted; other entries kept)."""
    import yaml

    data = {**read_lock(path), **records}
    head = ("# Hyperparameter lock: the values rule tune chose for each tuning entry of the config file beside\n"
            "# it. Tables are built from these values. Generated: python3.11 bootstrap.py retune ENTRY --write\n")
    body = yaml.safe_dump({k: data[k] for k in sorted(data)}, sort_keys=False, default_flow_style=None, width=110)
    write_text(path, head + body)


def snakemake_workdir(args: list[str]) -> Path:
    """The working directory a Snakemake command line names (`--directory DIR`, `-d DIR`,
    `--directory=DIR`); the current directory otherwise."""
    for i, a in enumerate(args):
        if a in ("--directory", "-d") and i + 1 < len(args):
            return Path(args[i + 1])
        if a.startswith("--directory="):
            return Path(a.split("=", 1)[1])
    return Path(".")


def retune(entries: list[str], write: bool, configfiles: list[str], snakemake_args: list[str]) -> int:
    """`python -m unlearnbench retune ENTRY… [--write]`: derive the entries again (rule tune, from
    this checkout's workflow), print every difference against the lock, and with --write record the
    new values in the lock files. Exit 1 when a value differs and was not written."""

    from .infra.provenance import REPO

    check_config_files(configfiles)  # size, encoding, alias bombs: before YAML or Snakemake reads them
    files = [str(REPO / "config.yaml"), *sorted(str(p) for p in (REPO / "workflow" / "papers").glob("*/study.yaml")),
             *configfiles]
    import yaml

    defined = {}
    for f in files:
        with open(f, encoding="utf-8") as fh:
            defined.update({e: f for e in ((yaml.safe_load(fh) or {}).get("tuning") or {})})
    unknown = [e for e in entries if e not in defined]
    if unknown or not entries:
        print(f"retune: {'unknown tuning entry ' + repr(unknown[0]) if unknown else 'name the entries to re-derive'}; "
              f"defined: {', '.join(sorted(defined))}", file=sys.stderr)
        return 2
    targets = [f"results/tuning/{e}.json" for e in entries]
    cmd = [str(Path(sys.executable).with_name("snakemake")), "--snakefile", str(REPO / "Snakefile"),
           "--workflow-profile", str(REPO / "workflow" / "profiles" / "default"),
           *[a for f in configfiles for a in ("--configfile", f)], *snakemake_args, "--", *targets]
    env = {**os.environ, "UNLEARNBENCH_UNLOCKED": "1"}  # the lock may be stale while it is re-derived
    rc = subprocess.call(cmd, env=env)
    if rc:
        return rc
    homes = lock_homes(files, {e: None for e in entries})
    cpu = machine()["cpu"]
    changed, updates = [], {}
    workdir = snakemake_workdir(snakemake_args)
    for e, target in zip(entries, targets):
        result = read_json(workdir / target)
        diff = difference(result, read_lock(homes[e]).get(e))
        print("\n".join(diff) if diff else f"{e}: the same values as {homes[e].name}")
        changed += diff
        updates.setdefault(homes[e], {})[e] = lock_record(result, cpu)
    if write:
        for path, records in updates.items():
            write_lock(path, records)
            print(f"wrote {path}")
        return 0
    return 1 if changed else 0
