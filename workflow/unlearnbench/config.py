"""Config checks beyond the JSON schema, one-line error formatting, and study / figure expansion.

Torch-free (Snakemake runs it while building the DAG). The schema
(workflow/schemas/config.schema.json, applied with snakemake.utils.validate) checks shapes and
types; `coerce_numbers` first turns numbers written as strings ("1e-3", --config overrides) into
numbers where the schema expects one; `check_config` checks cross-references and values: every
study names existing groups, every method instance a registered method with valid
hyperparameters, every model a registered architecture with known arguments, every forget class
exists in its dataset, every figure and paper entry points at what exists.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from .configfile import check_config_files
from .data import NUM_CLASSES, approx_train_size
from .errors import UserError
from .methods import create_method
from .metrics.cost import DEFINITIONS, relearn_settings
from .models import list_models, model_arguments
from .report.figures import figure_reads, list_kinds
from .studies import figure_runs, study_methods, study_setups


def format_validation_error(exc: BaseException) -> str:
    """One line from a snakemake WorkflowError wrapping a jsonschema ValidationError."""
    import jsonschema

    for arg in (exc.__cause__, exc.__context__, *getattr(exc, "args", ())):
        if isinstance(arg, jsonschema.ValidationError):
            where = ".".join(str(p) for p in arg.absolute_path) or "(top level)"
            return f"config error at {where}: {arg.message}"
    return f"config error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"


_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _types(schema: dict) -> set[str]:
    t = schema.get("type", [])
    return {t} if isinstance(t, str) else set(t)


def _coerce(value: Any, schema: dict) -> Any:
    if isinstance(value, str) and _types(schema) & {"number", "integer"} and _NUMBER.fullmatch(value.strip()):
        number = float(value)
        return int(number) if "integer" in _types(schema) and number.is_integer() else number
    if isinstance(value, str) and "boolean" in _types(schema) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if isinstance(value, dict):
        props, extra = schema.get("properties", {}), schema.get("additionalProperties")
        for k in value:
            sub = props.get(k, extra if isinstance(extra, dict) else None)
            if sub is not None:
                value[k] = _coerce(value[k], sub)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        value[:] = [_coerce(v, schema["items"]) for v in value]
    return value


def coerce_numbers(config: dict[str, Any], schema_path: str) -> None:
    """In place: numbers written as strings become numbers wherever the schema expects a number
    (PyYAML reads `1e-3` as a string; --config overrides arrive as strings)."""
    with open(schema_path) as fh:
        _coerce(config, json.load(fh))


def load_config_files(workflow: Any, config: dict[str, Any], paths: list[str]) -> list[str]:
    """What Snakemake's `configfile:` directive does, with libyaml: merge each file into `config`,
    then the command line's config (--config / --configfile) on top, so it still wins. (Snakemake
    parses config files with pure-Python YAML through yte: seconds for the paper files.) A name
    defined by two of these files (two paper folders, or a paper and config.yaml) is refused: an
    overlay on the command line is the only way to redefine one. Returns every config file in load
    order (the hyperparameter locks live beside them: tuning.py). Every file, the command line's
    included, is first checked for size, encoding and YAML alias bombs (configfile.py)."""
    import yaml
    from snakemake.utils import update_config

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:  # before anything walks them: Snakemake has read the command line's files, references shared
        check_config_files([*paths, *(workflow.config_settings.configfiles or ())])
    except UserError as e:
        raise SystemExit(f"config error: {e}") from None
    defined: dict[str, str] = {}  # "group.name" -> the file that defines it
    for path in paths:
        with open(path, encoding="utf-8") as fh:
            try:
                data = yaml.load(fh, Loader=loader) or {}
            except yaml.YAMLError as e:
                raise SystemExit(f"config error: {path} is not valid YAML ({str(e).splitlines()[0]})")
        for name in _names(data):
            if name in defined:  # one namespace per file: a paper never redefines another's (or config.yaml's) names
                raise SystemExit(f"config error: {name} is defined by both {defined[name]} and {path}; rename it in one of them")
            defined[name] = path
        update_config(config, data)
        workflow.configfiles.append(path)
    update_config(config, workflow.config_settings.overwrite_config)
    return [*paths, *(str(p) for p in (workflow.config_settings.configfiles or ()))]


def _names(data: Any) -> list[str]:
    """The named entries ("methods.finetune", ...) and top-level settings a config file defines."""
    if not isinstance(data, dict):
        return []
    return [f"{g}.{n}" if isinstance(block, dict) else g for g, block in data.items()
            for n in (block if isinstance(block, dict) else [None])]


def _need(group: dict, name: str, what: str, where: str) -> dict:
    if name not in group:
        raise UserError(f"{where} names unknown {what} {name!r}; defined: {', '.join(sorted(group)) or '(none)'}")
    return group[name]


# Names become file names and path components (results/tables/<study>.csv, results/runs/.../<method>/):
# letters, digits, '_', '.', '-'; a letter or digit first, no final '.', never '..'.
SAFE_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9_-])?")
# tuning before methods: a tuning entry's trials are method instances named after it
NAMED_GROUPS = ("datasets", "models", "training", "scenarios", "tuning", "methods", "studies", "figures", "papers")


def check_names(config: dict[str, Any]) -> None:
    """Every name of a named group is a safe path component (a study named ../../evil would write
    its table outside results/; a space or '/' would only surface as a missing input)."""
    for group in NAMED_GROUPS:
        for name in config.get(group) or {}:
            name = str(name)
            if group == "methods" and name.startswith("_"):
                raise UserError(f"methods.{name}: instance names may not start with '_'")
            if not SAFE_NAME.fullmatch(name) or ".." in name:
                raise UserError(f"{group}: the name {name!r} is not allowed (names become file paths); use letters, "
                                "digits, '_', '.' and '-', a letter or digit first, no '..' and no final '.'")


def _once_each(values: list, what: str, where: str) -> None:
    seen = set()
    for v in values:
        key = json.dumps(v, sort_keys=True)
        if key in seen:
            raise UserError(f"{where}: {what} {v!r} is listed twice; list each once")
        seen.add(key)


def _check_classes(config: dict[str, Any], scenario: str, dataset: str) -> None:
    """The forget classes a scenario names exist in a dataset whose class count is known from its source."""
    scen = config["scenarios"][scenario]
    n_classes = NUM_CLASSES.get(config["datasets"][dataset]["source"])
    if n_classes is None or not scen.get("classes"):
        return  # an ImageFolder's classes are counted when it is read (rule make_forget_request checks them)
    for c in scen["classes"]:
        if not 0 <= c < n_classes:
            raise UserError(f"scenarios.{scenario}: forget class {c} is out of range for dataset {dataset} "
                            f"(classes 0..{n_classes - 1})")
    if scen["type"] == "class" and len(set(scen["classes"])) >= n_classes:
        raise UserError(f"scenarios.{scenario}: forgets every class of dataset {dataset}; leave at least one to retain")


def check_config(config: dict[str, Any]) -> None:
    """Raise UserError (one line) on the first inconsistency."""

    check_names(config)
    made = {}  # instance name -> method object (created once)
    for name, m in config["models"].items():
        if "prune" in m:
            base = _need(config["models"], m["base"], "base model", f"models.{name}")
            if "prune" in base:
                raise UserError(f"models.{name}: the base of a pruned variant must be a dense model, not {m['base']!r}")
            if set(m) - {"base", "prune"}:
                raise UserError(f"models.{name}: a pruned variant takes only base and prune, not {sorted(set(m) - {'base', 'prune'})}")
            continue
        if m["arch"] not in list_models():
            raise UserError(f"models.{name}: unknown arch {m['arch']!r}; available: {', '.join(list_models())}")
        bad = sorted(set(m) - {"arch"} - set(model_arguments(m["arch"])))
        if bad:
            raise UserError(f"models.{name}: arch {m['arch']!r} has no argument {bad[0]!r}; "
                            f"known: {', '.join(model_arguments(m['arch'])) or '(none)'}")
    for name, spec in config["methods"].items():
        try:
            made[name] = create_method(spec)
        except UserError as e:
            raise UserError(f"methods.{name}: {e}") from None
    for name, ds in config["datasets"].items():
        if ds["source"] == "imagefolder" and not ds.get("path"):
            raise UserError(f"datasets.{name}: source imagefolder needs a 'path' (relative to data_root)")
    for study, s in config["studies"].items():
        where = f"studies.{study}"
        setups = study_setups(s)
        if not setups:
            raise UserError(f"{where}: give dataset/model/training or a list of setups")
        for st in setups:
            _need(config["datasets"], st["dataset"], "dataset", where)
            _need(config["models"], st["model"], "model", where)
            _need(config["training"], st["training"], "training recipe", where)
        _once_each(s["methods"], "method", f"{where}.methods")
        _once_each(s["scenarios"], "scenario", f"{where}.scenarios")
        _once_each(s["seeds"], "seed", f"{where}.seeds")
        _once_each(setups, "setup", f"{where}.setups")
        for m in s["methods"]:
            _need(config["methods"], m, "method instance", where)
        if not any(config["methods"][m]["method"] == "retrain" and not config["methods"][m].get("replica")
                   for m in s["methods"]):
            raise UserError(f"{where}: methods must include a 'retrain' instance (gaps are measured against it)")
        for sc in s["scenarios"]:
            scen = _need(config["scenarios"], sc, "scenario", where)
            for st in setups:
                _check_classes(config, sc, st["dataset"])
            for m in s["methods"]:
                cls = made[m]
                if cls.kind != "reference" and scen["type"] not in cls.supports:
                    raise UserError(f"{where}: method {m} does not support {scen['type']} forgetting (scenario {sc})")
        for m in study_methods(config, study):  # the floor row, or a seed-cycle row listed by hand
            cycle = config["methods"][m].get("seed_cycle") or []
            missing = [x for x in s["seeds"] if x not in cycle]
            if cycle and missing:
                raise UserError(f"{where}: seed {missing[0]} is not in methods.{m}.seed_cycle {cycle} "
                                "(the noise-floor row reads the next seed's retrain): list every seed of the study there")
        _check_relearn_definitions(config, study, s)
    for name, t in config.get("tuning", {}).items():  # add_tuning_trials checked the names it uses
        for st in [t, *t.get("also_for", [])]:
            _check_classes(config, t["scenario"], st["dataset"])
    check_figures(config)
    check_scaled(config)
    check_batch_sizes(config)
    for paper, p in config.get("papers", {}).items():
        for st in p["studies"]:
            _need(config["studies"], st, "study", f"papers.{paper}")
        for fig in p.get("figures", []):
            _need(config.get("figures", {}), fig, "figure", f"papers.{paper}")
        check_claims(config, paper, p.get("claims", []))


def _check_relearn_definitions(config: dict[str, Any], study: str, s: dict[str, Any]) -> None:
    """A relearn metric the study reports must be measured by one of its relearn extras (relearn setting
    `definitions`, default both; metrics/relearn.py)."""
    variants = {"relearn", *(f"relearn.{v}" for v in config.get("relearn_variants", {}))}  # others: check_extras
    measured = {d for e in s.get("extras", []) if e in variants
                for d in relearn_settings(config, e[len("relearn"):]).get("definitions", DEFINITIONS)}
    for m in [*s.get("metrics", []), *s.get("gap_metrics", [])]:
        unit = m.rsplit("_", 1)[-1]
        if m.split("_", 1)[0] in ("relearn", "ain") and unit in DEFINITIONS and unit not in measured:
            raise UserError(f"studies.{study}: metric {m} needs a relearn extra that measures {unit} "
                            f"(extras: [relearn] or [relearn.<variant>] whose `definitions` include {unit})")


def _lookup(config: dict[str, Any], dotted: str) -> bool:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def check_scaled(config: dict[str, Any]) -> None:
    """A study whose settings were scaled for one dataset and that now runs on another (an overlay)
    says which settings those were: a warning at start-up, once per study."""
    for study, s in config["studies"].items():
        sc = s.get("scaled")
        if not sc:
            continue
        where = f"studies.{study}.scaled"
        fors = [sc["for"]] if isinstance(sc["for"], str) else list(sc["for"])
        for ds in fors:
            _need(config["datasets"], ds, "dataset", where)
        missing = [p for p in sc["settings"] if not _lookup(config, p)]
        if missing:
            raise UserError(f"{where}: {missing[0]} is not a setting of this config; name dotted paths such as "
                            "methods.<instance>.<hyperparameter>")

        def data(ds: str) -> tuple:
            return tuple(config["datasets"][ds].get(k) for k in ("source", "image_size"))

        now = sorted({st["dataset"] for st in study_setups(s) if data(st["dataset"]) not in {data(d) for d in fors}})
        if now:
            print(f"warning: studies.{study} runs on {', '.join(now)}, but {', '.join(sc['settings'])} were scaled for "
                  f"{', '.join(fors)}{' (' + sc['why'] + ')' if sc.get('why') else ''}: set them for the new data in your "
                  f"overlay, and its studies.{study}.scaled.for", file=sys.stderr)


def check_batch_sizes(config: dict[str, Any]) -> None:
    """A recipe whose batch size is at least the training set of a study's dataset (size known from
    its source) takes one optimiser step per epoch: a warning at start-up, once per recipe and
    dataset (the training job warns too, with the exact count: training.py)."""
    warned = set()
    for study, s in config["studies"].items():
        for st in study_setups(s):
            key = (st["training"], st["dataset"])
            ds, bs = config["datasets"][st["dataset"]], config["training"][st["training"]].get("batch_size", 64)
            n = approx_train_size(ds)
            if key in warned or n is None or bs < n:
                continue
            warned.add(key)
            print(f"warning: training.{st['training']}: batch_size {bs} is at least the ~{n} training images of "
                  f"dataset {st['dataset']} (studies.{study}): one optimiser step per epoch; lower batch_size",
                  file=sys.stderr)


def check_claims(config: dict[str, Any], paper: str, claims: list[dict[str, Any]]) -> None:
    """Ids are unique. A claim whose study is not on the page or whose rows are not in that study (an
    overlay narrowed it) never blocks a build: it is kept, marked `unavailable`, and its line in the
    claims table says why it was not checked."""
    seen = set()
    for c in claims:
        where = f"papers.{paper}.claims.{c['id']}"
        if c["id"] in seen:
            raise UserError(f"{where}: the id is used twice; give each claim its own")
        seen.add(c["id"])
        c.pop("unavailable", None)
        if c["study"] not in config["papers"][paper]["studies"] or c["study"] not in config["studies"]:
            c["unavailable"] = f"study {c['study']} is not on this page"
            continue
        rows = study_methods(config, c["study"])
        missing = [c[r] for r in ("a", "b") if r in c and c[r] not in rows]
        if missing:
            c["unavailable"] = f"row {missing[0]} is not in study {c['study']}"


def check_figures(config: dict[str, Any]) -> None:
    """A figure that names an unknown kind or study is a config error. One whose selection matches no
    run of its study (an overlay narrowed the study) never blocks a table: it is dropped, with a
    warning, from the figures and from its paper's page."""
    for name, f in list(config.get("figures", {}).items()):
        where = f"figures.{name}"
        if f["kind"] not in list_kinds():
            raise UserError(f"{where}: unknown figure kind {f['kind']!r}; available: {', '.join(list_kinds())}")
        if "table" in figure_reads(f["kind"]):
            if not f.get("studies"):
                raise UserError(f"{where}: figure kind {f['kind']} draws tables; list them under 'studies'")
            for st in f["studies"]:
                _need(config["studies"], st, "study", where)
            continue
        _need(config["studies"], f.get("study", ""), "study", where)
        n_setups = len(study_setups(config["studies"][f["study"]]))
        bad = [i for i in f.get("select", {}).get("setups", []) if not 0 <= int(i) < n_setups]
        if bad or not list(figure_runs(config, name)):
            why = f"setup index {bad[0]} (the study has {n_setups})" if bad else "its selection matches no run"
            print(f"warning: {where} is left out: {why} of study {f['study']!r}", file=sys.stderr)
            del config["figures"][name]
            for p in config.get("papers", {}).values():
                if name in p.get("figures", []):
                    p["figures"] = [x for x in p["figures"] if x != name]


def _sorted(obj: Any) -> Any:
    return {k: _sorted(obj[k]) for k in sorted(obj)} if isinstance(obj, dict) else obj


def canonical_order(config: dict[str, Any]) -> None:
    """Sort the keys inside every dataset, model, recipe, scenario and method block. Rules take these
    blocks as params and Snakemake compares params as text, so an overlay that only lists the same
    settings in another order would otherwise rerun every job that reads them. Tuning grids keep
    their order: it decides which points a budget covers."""
    for group in ("datasets", "models", "training", "scenarios", "methods"):
        for name, block in config.get(group, {}).items():
            config[group][name] = _sorted(block)
