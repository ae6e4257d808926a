"""A paper's settings ledger (rule report_ledger): results/papers/<paper>.ledger.{csv,md}.

Each entry of `papers.<p>.ledger` (schema: workflow/schemas/config.schema.json) is one setting the
paper states: `paper` (its value and section, as the paper prints it), `code` (what the authors'
public code uses, with its file; "no public code" for DAU and UISPS), and the config keys holding our
two values, `exact` (the paper-exact rows) and `tuned` (the tuned rows), as dotted paths such as
`methods.mugan_vgg_mugan_px.lr` or `training.mugan_adam.epochs`; `why` says why any of them differ.

Our values are read from the loaded config, never typed: a method key resolves to the instance's
setting or else its method's default (a model key: the architecture's default); a key a tuned instance's entries choose to the value locked by
each of them (`0.02 (dau_class); 0.01 (dau_random)`). A path the config lacks reads "–".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import UserError
from ..io import write_csv, write_text
from ..methods import get_method
from ..models._registry import model_defaults
from ..tuning import entries_of, locked_values

MISSING = "–"
COLUMNS = ["setting", "paper", "code", "paper-exact (ours)", "tuned (ours)", "why they differ"]


def show(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(show(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {show(x)}" for k, x in v.items()) + "}"
    return str(v)


def lookup(config: dict[str, Any], path: str, homes: dict[str, Path] | None = None, tuned: bool = False) -> str:
    """The value at dotted `path` (module docstring); `tuned`: a tuned method key gives its locked values."""
    parts = path.split(".")
    if parts[0] == "methods" and len(parts) == 3:
        inst, key = parts[1], parts[2]
        spec = config.get("methods", {}).get(inst)
        if spec is None:
            return MISSING
        defaults = get_method(spec["method"]).defaults
        if key not in spec and key not in defaults:
            raise UserError(f"ledger: {path}: method {spec['method']!r} has no hyperparameter {key!r}")
        base = spec.get(key, defaults.get(key))
        if not tuned or not entries_of(spec):
            return show(base)
        values = []  # the entries that tune this key; a key no entry tunes is the instance's setting
        for entry in entries_of(spec):
            chosen = locked_values(config, homes or {}, entry).get("chosen", {}).get(spec.get("tune_as") or inst, {})
            if key in chosen:
                values.append(f"{show(chosen[key])} ({entry})")
        return "; ".join(values) if values else show(base)
    if parts[0] == "models" and len(parts) == 3 and parts[1] in config.get("models", {}):
        spec = config["models"][parts[1]]
        while parts[2] not in spec and spec.get("base") in config["models"]:  # a pruned variant: its base's
            spec = config["models"][spec["base"]]
        if parts[2] not in spec and "arch" in spec:
            return show(model_defaults(spec["arch"]).get(parts[2], MISSING))
    node: Any = config
    for p in parts:
        if not isinstance(node, dict) or p not in node:
            return MISSING
        node = node[p]
    return show(node)


def check_ledgers(config: dict[str, Any]) -> None:
    """At start-up: every method path of every paper's ledger names a hyperparameter of its method
    (a wrong key is one config error line, not a traceback when the ledger is built)."""
    for paper, entry in config.get("papers", {}).items():
        for e in entry.get("ledger") or []:
            for path in filter(None, (e.get("exact"), e.get("tuned"))):
                try:
                    lookup(config, path)
                except UserError as err:
                    raise UserError(f"papers.{paper}.ledger ({e['setting']}): {err}") from None


def ledger_rows(config: dict[str, Any], paper: str, homes: dict[str, Path] | None = None) -> list[dict[str, str]]:
    entries = config["papers"][paper].get("ledger")
    if not entries:
        raise UserError(f"papers.{paper} lists no ledger: nothing to write")
    rows = []
    for e in entries:
        rows.append({"setting": e["setting"], "paper": e["paper"], "code": e.get("code", "no public code"),
                     "paper-exact (ours)": lookup(config, e["exact"]) if e.get("exact") else MISSING,
                     "tuned (ours)": lookup(config, e["tuned"], homes, tuned=True) if e.get("tuned") else MISSING,
                     "why they differ": e.get("why", "")})
    return rows


def _cell(v: str) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")


def render(title: str, rows: list[dict[str, str]]) -> str:
    out = [f"# {title}: settings ledger", "",
           "Every setting the paper states, what its public code uses, and the values our paper-exact and tuned rows "
           "run, read from the loaded config (tuned values: the lock of each tuning entry).", "",
           "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    out += ["| " + " | ".join(_cell(r[c]) for c in COLUMNS) + " |" for r in rows]
    return "\n".join(out) + "\n"


def write_ledger(title: str, rows: list[dict[str, str]], out_csv: str, out_md: str) -> None:
    """The rule's job: the rows were resolved from the config when the DAG was built (its params)."""
    import pandas as pd

    table = pd.DataFrame(rows, columns=COLUMNS)
    write_csv(out_csv, table)
    write_text(out_md, render(title, rows))
