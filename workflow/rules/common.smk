# Config validation, artefact paths and target lists shared by all rule files.

import os
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

WORKFLOW_DIR = os.path.join(workflow.basedir, "workflow")
# Rule scripts import the library from the checkout (no install needed inside conda/cluster jobs).
os.environ["PYTHONPATH"] = WORKFLOW_DIR + os.pathsep + os.environ.get("PYTHONPATH", "")
sys.path.insert(0, WORKFLOW_DIR)

from unlearnbench.config import check_config, format_validation_error, setup_label, study_runs
from unlearnbench.errors import UserError
from unlearnbench.methods import create_method

try:
    validate(config, schema=os.path.join(WORKFLOW_DIR, "schemas", "config.schema.yaml"))
    check_config(config)
except WorkflowError as e:
    raise SystemExit(format_validation_error(e))
except UserError as e:
    raise SystemExit(f"config error: {e}")

R = "results"
MODEL_DIR = os.path.join(R, "models/{dataset}/{model}/{training}/s{seed}")
RUN_DIR = os.path.join(R, "runs/{dataset}/{model}/{training}/s{seed}/{scenario}/{method}")

wildcard_constraints:
    dataset=r"[A-Za-z0-9][\w.-]*",
    model=r"[A-Za-z0-9][\w.-]*",
    training=r"[A-Za-z0-9][\w.-]*",
    scenario=r"[A-Za-z0-9][\w.-]*",
    method=r"[A-Za-z0-9][\w.-]*",
    seed=r"\d+",
    study=r"[A-Za-z0-9][\w.-]*",

DEVICE = config["device"]
THREADS = config["threads"]
GPU = 1 if DEVICE == "cuda" else 0


def method_kind(name):
    return create_method(config["methods"][name]).kind


def method_registered_name(name):
    return config["methods"][name]["method"]


def checkpoint_of(w):
    """The checkpoint evaluated for a run: reference rows map to the trained models."""
    name = method_registered_name(w.method)
    if name == "original":
        return expand(os.path.join(MODEL_DIR, "original.safetensors"), **w)[0]
    if name == "retrain":
        return expand(os.path.join(MODEL_DIR, "retrain_{scenario}.safetensors"), **w)[0]
    return expand(os.path.join(RUN_DIR, "model.safetensors"), **w)[0]


def time_info_of(w):
    """The JSON holding the run's wall time: unlearning time, retrain's training time, none for original."""
    name = method_registered_name(w.method)
    if name == "original":
        return []
    if name == "retrain":
        return expand(os.path.join(MODEL_DIR, "retrain_{scenario}.json"), **w)
    return expand(os.path.join(RUN_DIR, "unlearn.json"), **w)


def retrain_method(w):
    """The retrain instance of the study that includes this run (the first declared)."""
    return next(m for m, spec in config["methods"].items() if spec["method"] == "retrain")


# Artefacts made by their own rules and consumed by methods that declare them in `needs`.
# Each entry maps an artefact kind to a function (wildcards, method spec) -> path.
ARTEFACTS = {}


def method_artefacts(w):
    spec = config["methods"][w.method]
    return {f"artefact_{kind}": ARTEFACTS[kind](w, spec) for kind in create_method(spec).needs}


# Extra per-run metric files a study can ask for with `extras: [name]` (e.g. relearn time).
# Each maps a name to a path pattern with RUN_DIR's wildcards; the file holds {"metrics": {...}}.
RUN_EXTRAS = {}


def run_files(study, run):
    """Metric files of one run: metrics.json plus the study's extras."""
    extras = config["studies"][study].get("extras", [])
    unknown = [e for e in extras if e not in RUN_EXTRAS]
    if unknown:
        raise WorkflowError(f"studies.{study}.extras: unknown extra {unknown[0]!r}; known: {sorted(RUN_EXTRAS)}")
    return [expand(p, **run)[0] for p in [os.path.join(RUN_DIR, "metrics.json")] + [RUN_EXTRAS[e] for e in extras]]


def study_metric_files(study):
    return [f for r in study_runs(config, study) for f in run_files(study, r)]


def study_run_records(study):
    recs = []
    for r in study_runs(config, study):
        spec = config["methods"][r["method"]]
        recs.append({**r, "setup": setup_label(r), "method_name": spec["method"],
                     "access": create_method(spec).access().label, "files": run_files(study, r)})
    return recs


def all_study_targets():
    return expand(os.path.join(R, "tables/{study}.csv"), study=list(config["studies"]))
