# Shared by every rules file: config validation, path templates, and the input functions that map a
# run (dataset, model, training, seed, scenario, method instance) to the files it needs.
# Building the DAG reads method declarations (access, artefacts, supported scenarios) without
# importing torch.

import os
import re
from functools import lru_cache

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from unlearnbench.config import canonical_order, check_config, coerce_numbers, format_validation_error
from unlearnbench.keys import artefact_key, config_hash, settings_key
from unlearnbench.studies import figure_runs, study_runs, study_setups
from unlearnbench.tuning import add_tuning_trials, fingerprint, lock_homes, resolve_cell, tuning_runs
from unlearnbench.errors import UserError
from unlearnbench.methods import create_method
from unlearnbench.infra.numerics import export as export_numerics
from unlearnbench.report.figures import figure_reads
from unlearnbench.report.ledger import check_ledgers, ledger_rows

_SCHEMA = os.path.join(workflow.basedir, "workflow", "schemas", "config.schema.json")
try:
    coerce_numbers(config, _SCHEMA)  # "1e-3" and --config strings become numbers where a number is expected
    validate(config, schema=_SCHEMA)
    add_tuning_trials(config)  # each tuning trial becomes a method instance
    canonical_order(config)  # params compare as text: key order must not trigger reruns
    check_config(config)
    check_ledgers(config)
    LOCKS = lock_homes(CONFIG_FILES, config.get("tuning", {}))  # {tuning entry: its lock file}
    # `retune` (and a dry run of an overlay not locked yet) sets UNLEARNBENCH_UNLOCKED=1: tuned cells
    # without a valid lock then run their config values, marked "unlocked" in unlearn.json
    UNLOCKED = os.environ.get("UNLEARNBENCH_UNLOCKED") == "1"
    # CPU kernel paths: every job (local, warm fork, Slurm job step) inherits this environment and
    # loads torch / numpy under it (unlearnbench/infra/numerics.py)
    export_numerics(config["numerics"], config["threads"])
except WorkflowError as e:
    raise SystemExit(format_validation_error(e))
except UserError as e:
    raise SystemExit(f"config error: {e}")

R = "results"
DATA_DIR = os.path.join(R, "data", "{dataset}")
MODEL_DIR = os.path.join(R, "models", "{dataset}", "{model}", "{training}", "s{seed}")
ART_DIR = os.path.join(R, "artefacts", "{dataset}", "{model}", "{training}", "s{seed}")
RUN_DIR = os.path.join(R, "runs", "{dataset}", "{model}", "{training}", "s{seed}", "{scenario}", "{method}")
RUN_KEYS = ("dataset", "model", "training", "seed", "scenario", "method")
ENV = os.path.join(workflow.basedir, "envs", "unlearnbench.yaml")  # one conda env for every rule


wildcard_constraints:
    dataset=r"[A-Za-z0-9][\w.-]*",
    model=r"[A-Za-z0-9][\w.-]*",
    training=r"[A-Za-z0-9][\w.-]*",
    scenario=r"[A-Za-z0-9][\w.-]*",
    method=r"[A-Za-z0-9][\w.-]*",
    seed=r"\d+",
    study="|".join(re.escape(s) for s in config["studies"]) or "(?!)",  # studies and figures share results/figures/
    figure="|".join(re.escape(f) for f in config.get("figures", {})) or "(?!)",
    paper="|".join(re.escape(p) for p in config.get("papers", {})) or "(?!)",
    tuning="|".join(re.escape(t) for t in config.get("tuning", {})) or "(?!)",
    view=r"[\w.-]+",
    repeats=r"[1-9]\d*",
    k=r"\d+",
    lseed=r"\d+",
    key=r"[0-9a-f]{10}",
    replica=r"(-r[1-9]\d*)?",


DEVICE = config["device"]
THREADS = config["threads"]
GPU = 1 if DEVICE == "cuda" else 0


def model_spec(name):
    """The architecture a model entry builds: a pruned variant ({base, prune}) builds its base's."""
    m = config["models"][name]
    return model_spec(m["base"]) if "prune" in m else m


PRUNED_MODELS = [n for n, m in config["models"].items() if "prune" in m]
DENSE_MODELS = [n for n in config["models"] if n not in PRUNED_MODELS]


def pruning_mask(w):
    """The pruning mask of a sparse original (pruned model variants only): unlearning and the
    gold model keep its pruned weights at zero."""
    if w["model"] not in PRUNED_MODELS:
        return {}
    return {"mask": run_path(os.path.join(MODEL_DIR, "original.mask.safetensors"), w)}


def names_regex(names):
    return "|".join(re.escape(n) for n in names) or "(?!)"


@lru_cache(maxsize=None)
def method_of(name):
    """The method object of a config instance (one per instance name, cached). A tuned instance's
    access and artefact kinds do not depend on its tuned values (tuning.py checks it)."""
    return create_method(config["methods"][name])


@lru_cache(maxsize=None)
def _cell_spec(name, dataset, model, training, scenario):
    return resolve_cell(config, LOCKS, name, {"dataset": dataset, "model": model, "training": training}, scenario, UNLOCKED)


@lru_cache(maxsize=None)
def _cell_method(name, dataset, model, training, scenario):
    return create_method(_cell_spec(name, dataset, model, training, scenario)[0])


def _cell(fn, w):
    """A tuned cell is resolved when the DAG needs it: a missing or stale lock is one line then."""
    try:
        return fn(w["method"], w["dataset"], w["model"], w["training"], w["scenario"])
    except UserError as e:
        raise SystemExit(f"config error: {e}") from None


def run_spec(w):
    """The method spec a run executes: the instance's block, with the locked tuned values of its
    cell (tuning.py); and where those values come from (None for an untuned instance)."""
    return _cell(_cell_spec, w)


def run_method(w):
    """The method object of a run (its tuned values applied: they may change an artefact's key)."""
    return _cell(_cell_method, w)


def run_path(pattern, w, **over):
    """`pattern` filled with a run's wildcards (`w`: wildcards or a dict), overridden by `over`."""
    return expand(pattern, **{**dict(w), **over})[0]


def scenario_classes(scenario):
    """The forget classes of a class scenario (per-class artefacts are made for each)."""
    sc = config["scenarios"][scenario]
    if sc["type"] != "class":
        raise WorkflowError(f"scenario {scenario!r} is not a class scenario; per-class artefacts need one")
    return sorted(set(sc["classes"]))


def retrain_ckpt(w, replica=0):
    return run_path(os.path.join(MODEL_DIR, ("retrain" + (f"-r{replica}" if replica else "")) + "_{scenario}.safetensors"), w)


def checkpoint_of(w):
    """The checkpoint evaluated for a run: reference rows map to the trained models."""
    m = method_of(w["method"])
    if m.name == "original":
        return run_path(os.path.join(MODEL_DIR, "original.safetensors"), w)
    if m.name == "retrain":
        partner = m.partner_seed(int(w["seed"]))  # a seed_cycle noise floor: another seed's gold model
        return retrain_ckpt(w, m.hp["replica"]) if partner is None else retrain_ckpt({**dict(w), "seed": partner})
    return run_path(os.path.join(RUN_DIR, "model.safetensors"), w)


def outputs_of(w):
    """The logits file of a run: reference rows read their model's outputs (written by training)."""
    ckpt = checkpoint_of(w)
    if method_of(w["method"]).kind == "reference":
        return ckpt.replace(".safetensors", ".outputs.npz")
    return run_path(os.path.join(RUN_DIR, "outputs.npz"), w)


REFERENCE_INSTANCES = [n for n in config["methods"] if method_of(n).kind == "reference"]
METHOD_INSTANCES = [n for n in config["methods"] if n not in REFERENCE_INSTANCES]


def retrain_method(w):
    """The instance whose outputs a run is compared with: a replica-0 retrain. Every replica-0
    retrain instance denotes the same checkpoint (retrain has no other hyperparameter), so any of
    them gives the same numbers; `retrain` is taken when defined, else the first such instance."""
    names = [n for n, spec in config["methods"].items() if spec["method"] == "retrain" and not spec.get("replica")]
    return "retrain" if "retrain" in names else names[0]


# ----------------------------------------------------------------------------- data access views
def method_views(w):
    """{view_<role>: file} of the data sets the run's method declares (rule data_view makes them)."""
    views = run_method(w).access().views(int(w["seed"]))
    return {f"view_{role}": run_path(os.path.join(DATA_DIR, "access", "{scenario}", f"{view}.npz"), w)
            for role, view in views.items()}


# ----------------------------------------------------------------------------- artefacts
# ARTEFACTS[kind](w, method) -> the file (or list of files) a method of that kind reads; each rule
# file under rules/artefacts/ registers its kind. An artefact's path holds artefact_key(): the hash
# of the settings the method declares for it, so other hyperparameters never trigger a remake.
ARTEFACTS = {}


@lru_cache(maxsize=None)
def artefact_settings(kind):
    """{key: settings} of artefact `kind` over every method instance of the config and every tuned
    cell of a study (its locked values may set an artefact's settings)."""
    methods = [method_of(name) for name in config["methods"]]
    for s in config["studies"]:
        for r in study_runs(config, s):
            if config["methods"][r["method"]].get("tune"):
                try:
                    methods.append(_cell_method(r["method"], r["dataset"], r["model"], r["training"], r["scenario"]))
                except UserError:  # not locked: its own runs say so when the DAG needs them
                    pass
    return {artefact_key(m, kind): m.artefact_settings(kind) for m in methods if kind in m.needs()}


def settings_of(kind):
    return lambda w: artefact_settings(kind)[w["key"]]


def method_artefacts(w):
    """{artefact_<kind>: path(s)} of a run's method (keys from its tuned values, if any)."""
    m = run_method(w)
    unknown = [k for k in m.needs() if k not in ARTEFACTS]
    if unknown:
        raise WorkflowError(f"method {m.name!r} needs artefact {unknown[0]!r}, which no rule file registers")
    return {f"artefact_{kind}": ARTEFACTS[kind](w, m) for kind in m.needs()}


def timing_files(paths):
    """The timing sidecars (`<stem>.time.json`) of artefact or model files."""
    paths = [paths] if isinstance(paths, str) else list(paths)
    return [os.path.splitext(p)[0] + ".time.json" for p in paths]


def run_cost_files(w, repeats=1):
    """{own, artefacts, retrain}: the timing sidecars a run's cost is summed from (its own step —
    repeated `repeats` times when a study asks, see rule time_unlearn —, every artefact it consumed,
    and the gold model's training for the speed-up)."""
    m = method_of(w["method"])
    own = [] if m.name == "original" else timing_files(checkpoint_of(w))
    if repeats > 1 and m.kind != "reference":
        own = [run_path(os.path.join(RUN_DIR, f"timing_r{repeats}.time.json"), w)]
    arts = [] if m.kind == "reference" else [t for paths in method_artefacts(w).values() for t in timing_files(paths)]
    return {"own": own, "artefacts": arts, "retrain": timing_files(retrain_ckpt(w))}


# ----------------------------------------------------------------------------- per-run metric files
# RUN_EXTRAS[name] = path pattern (RUN_DIR wildcards) of an extra per-run metric file a study asks
# for with `extras: [name]`; the file holds {"metrics": {...}}.
RUN_EXTRAS = {}


def check_extras():
    """Start-up check, once every rule file has registered its extras."""
    for study, s in config["studies"].items():
        for e in s.get("extras", []):
            if e not in RUN_EXTRAS:
                raise SystemExit(f"config error: studies.{study}.extras: unknown extra {e!r}; known: {', '.join(sorted(RUN_EXTRAS))}")


def run_files(study, run):
    extras = config["studies"][study].get("extras", [])
    return [run_path(p, run) for p in [os.path.join(RUN_DIR, "metrics.json")] + [RUN_EXTRAS[e] for e in extras]]


def study_run_records(study):
    recs = []
    for r in study_runs(config, study):
        m = method_of(r["method"])
        cycle = {"seed_cycle": m.hp["seed_cycle"]} if m.hp.get("seed_cycle") else {}  # the caption names it
        recs.append({**r, **cycle, "method_name": m.name, "replica": m.hp.get("replica", 0), "access": m.access().label,
                     "files": run_files(study, r),
                     "cost_files": run_cost_files(r, config["studies"][study].get("timing_repeats", 1)),
                     "unlearn_info": None if m.kind == "reference" else run_path(os.path.join(RUN_DIR, "unlearn.json"), r)})
    return recs


def claim_studies(paper):
    return sorted({c["study"] for c in config["papers"][paper].get("claims", []) if not c.get("unavailable")})


def claims_inputs(paper):
    """The per-run files the paper's claims read: those of the studies they name (as report_study)."""
    if not config["papers"][paper].get("claims"):
        raise WorkflowError(f"papers.{paper} lists no claims: nothing to check")
    recs = [r for s in claim_studies(paper) for r in study_run_records(s)]
    return sorted({f for r in recs for f in r["files"]} | {f for r in recs for fs in r["cost_files"].values() for f in fs}
                  | {r["unlearn_info"] for r in recs if r["unlearn_info"]})


# ----------------------------------------------------------------------------- figures
def _figure_file(read, run):
    if read == "checkpoint":
        return checkpoint_of(run)
    if read in ("data", "split", "request"):
        name = {"data": "data.npz", "split": "split.json", "request": os.path.join("forget", "{scenario}.json")}[read]
        return run_path(os.path.join(DATA_DIR, name), run)
    if read == "outputs":
        return outputs_of(run)
    return run_path(os.path.join(RUN_DIR, "metrics.json"), run)


@lru_cache(maxsize=None)
def figure_inputs(name):
    """{"runs": [run + {"files": {read: path}}], "tables": [csv], "files": every path} of a figure."""
    spec = config["figures"][name]
    reads = figure_reads(spec["kind"])
    runs = [] if "table" in reads else [{**r, "files": {read: _figure_file(read, r) for read in reads}}
                                        for r in figure_runs(config, name)]
    tables = [os.path.join(R, "tables", f"{s}{ext}") for s in spec.get("studies", []) for ext in (".csv", ".cost.csv")] \
        if "table" in reads else []
    return {"runs": runs, "tables": tables, "files": sorted({f for r in runs for f in r["files"].values()} | set(tables))}


def all_study_targets():
    return expand(os.path.join(R, "tables", "{study}.csv"), study=list(config["studies"]))
