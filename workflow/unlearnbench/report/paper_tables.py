"""Paper tables that are not study tables (rule report_paper_table): facts the code declares,
generated from those declarations instead of typed by hand; results/tables/<name>.{csv,md}.

- kind "access" (MuGAN thesis Table 1): which data each compared method reads, from its declared
  `access()` (methods/_base.py `Access`: the sets rule data_view hands its unlearn job), and which
  artefacts made by other rules it consumes (`needs()`). One row per registered method and access;
  the config instances that share it are listed.
- kind "params" (MuGAN thesis Table 2): the parameters of each model entry, counted on the model the
  registry builds (models/) for a dataset's input size and class count: the (model, dataset) pairs
  of the paper's studies, and every model of the table at the further datasets its options name.

The config side (which instances, models and datasets; their specs) is resolved while the DAG is
built (report/paper_specs.py) and reaches these functions as plain dicts: `facts` (see
`write_paper_table`).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch

from ..errors import UserError
from ..infra.provenance import footer
from ..io import read_npz, write_csv, write_text
from ..methods import create_method
from ..models import build_model
from ..models._registry import list_models, model_defaults
from .tables import render_markdown

KINDS = ("access", "params")
YES, NO = "✓", "–"


# ----------------------------------------------------------------------------- access (Table 1)
def _retain(access) -> str:
    if access.retain == "full":
        return "all"
    if access.retain == "subset":
        return f"subset ({access.per_class} per class)" if access.per_class else f"subset ({access.fraction:g} of each class)"
    return NO


def access_table(methods: dict[str, dict[str, Any]], paper: dict[str, str] | None = None,
                 include_reference: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(CSV frame, display frame) of the data each method instance declares it reads.

    `methods`: {instance: config spec} in the order the rows should follow (first appearance);
    `paper`: {registered method: the paper's own entry}, shown beside ours; reference rows
    (original, retrain) only with `include_reference`."""
    groups: dict[tuple, dict[str, Any]] = {}
    for inst, spec in methods.items():
        m = create_method(spec)
        if m.kind == "reference" and not include_reference:
            continue
        a = m.access()
        arts = tuple(m.needs())
        key = (m.name, a.label, a.forget, _retain(a), a.val, arts)
        row = groups.setdefault(key, {"method": m.name, "instances": [], "forget": a.forget, "retain": _retain(a),
                                      "val": a.val, "artefacts": ", ".join(arts), "access": a.label,
                                      "reads_data": bool(a.forget or a.retain or a.val)})
        row["instances"].append(inst)
    if not groups:
        raise UserError("access table: the studies list no unlearning method (only reference rows)")
    rows = []
    for r in groups.values():
        r = {**r, "instances": " ".join(r["instances"])}
        if paper is not None:
            r["paper"] = paper.get(r["method"], "(not in the paper's table)")
        rows.append(r)
    csv = pd.DataFrame(rows)
    show = pd.DataFrame({
        "Method": csv["method"],
        "Forget set (D_f)": [YES if v else NO for v in csv["forget"]],
        "Retain set (D_r)": csv["retain"],
        "Validation": [YES if v else NO for v in csv["val"]],
        "Artefacts of other rules": [a or NO for a in csv["artefacts"]],
        "Access (table column)": csv["access"],
        "Instances": [", ".join(f"`{i}`" for i in s.split()) for s in csv["instances"]],
    })
    if paper is not None:
        show["Paper"] = csv["paper"]
    return csv, show


ACCESS_CAPTION = (
    "Generated from each method's declared access (`access()`, methods/_base.py `Access`): the data "
    "sets rule data_view writes for its unlearn job, which receives no other data file (the OS wall "
    "enforces it where available). Forget / Retain / Validation: the sets the job reads; Artefacts: "
    "files made by other rules before unlearning (`needs()`: noise, generators, update logs, ...; what "
    "each of those rules reads is in its rule file and in `snakemake -n -p`); Access: the label every "
    "study table shows (a retain subset that asks for more samples than a class holds reads all of it: "
    "'retain (all)' there). One row per registered method and access, with the config instances that share it.")


# ----------------------------------------------------------------------------- parameters (Table 2)
def count_parameters(spec: dict[str, Any], in_channels: int, image_size: int, num_classes: int) -> tuple[int, int]:
    """(trainable, all) parameters of the model a config entry builds for this input (BatchNorm
    running statistics and the input normalisation are buffers, not parameters). Built on the meta
    device: shapes only, no memory for the weights."""
    spec = {k: v for k, v in spec.items() if k != "pretrained_path"}  # weights never matter for a count
    arch = spec.pop("arch")
    with torch.device("meta"):
        model = build_model(arch, in_channels=in_channels, num_classes=num_classes, image_size=image_size, **spec)
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def _arch_text(spec: dict[str, Any]) -> str:
    """"vgg16_bn(width_mult=1.0)": the architecture with every argument, its defaults filled in."""
    full = {**(model_defaults(spec["arch"]) if spec["arch"] in list_models() else {}), **spec}
    args = ", ".join(f"{k}={v}" for k, v in full.items() if k not in ("arch", "pretrained_path"))
    return f"{spec['arch']}({args})" if args else spec["arch"]


def param_table(models: dict[str, dict[str, Any]], datasets: dict[str, dict[str, Any]], pairs: list[dict[str, Any]],
                paper: dict[str, int] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(CSV frame, display frame): one row per distinct (model entry, input shape, classes).

    `models`: {entry: {arch, arguments} (a pruned variant: its base's, with `sparsity`)};
    `datasets`: {name: {source, image_size, channels, num_classes}}; `pairs`: [{model, dataset,
    studies}] in row order (studies: those that train this pair, [] for a pair only the table's
    options name); `paper`: {arch: the paper's count}, shown beside ours."""
    rows: dict[tuple, dict[str, Any]] = {}
    for p in pairs:
        spec, ds = dict(models[p["model"]]), datasets[p["dataset"]]
        sparsity = spec.pop("sparsity", None)
        shape = (int(ds["channels"]), int(ds["image_size"]), int(ds["image_size"]))
        key = (p["model"], shape, int(ds["num_classes"]))
        if key not in rows:
            trainable, total = count_parameters(spec, shape[0], shape[1], key[2])
            rows[key] = {"model": p["model"], "arch": spec["arch"], "arguments": _arch_text(spec),
                         "input": "×".join(map(str, shape)), "num_classes": key[2], "datasets": [], "studies": [],
                         "params_trainable": trainable, "params_total": total, "sparsity": sparsity}
        r = rows[key]
        r["datasets"] += [p["dataset"]] if p["dataset"] not in r["datasets"] else []
        r["studies"] += [s for s in p.get("studies", []) if s not in r["studies"]]
    out = []
    for r in rows.values():
        r = {**r, "datasets": " ".join(r["datasets"]), "studies": " ".join(r["studies"])}
        if paper is not None:
            r["paper"] = paper.get(r["arch"])
        out.append(r)
    csv = pd.DataFrame(out)
    show = pd.DataFrame({
        "Model": [f"`{m}`" for m in csv["model"]],
        "Architecture": csv["arguments"],
        "Input (C×H×W)": csv["input"],
        "Classes": csv["num_classes"],
        "Datasets": csv["datasets"],
        "Trainable parameters": [f"{v:,}" for v in csv["params_trainable"]],
        "Used by": [s.replace(" ", ", ") if s else "– (named by the table)" for s in csv["studies"]],
    })
    if csv["sparsity"].notna().any():
        show["Pruned"] = [f"{s:g} of the weights zero" if pd.notna(s) else NO for s in csv["sparsity"]]
    if csv["params_total"].ne(csv["params_trainable"]).any():
        show.insert(6, "All parameters", [f"{v:,}" for v in csv["params_total"]])
    if paper is not None:
        show["Paper"] = [f"{int(v):,}" if pd.notna(v) else NO for v in csv["paper"]]
    return csv, show


PARAMS_CAPTION = (
    "Counted on the models the registry builds (unlearnbench.models) for each dataset's input size "
    "and class count: trainable parameters (BatchNorm running statistics and the input normalisation "
    "are buffers and not counted). Rows: the (model, dataset) pairs the paper's studies train, and the "
    "models at the further datasets the table names; 'Used by' lists the studies that train the pair.")


# ----------------------------------------------------------------------------- the rule
def _num_classes(ds: dict[str, Any], data_files: dict[str, str], name: str) -> int:
    if ds.get("num_classes"):
        return int(ds["num_classes"])
    if name not in data_files:
        raise UserError(f"params table: dataset {name!r} (source {ds['source']!r}) has no known class count "
                        "and no prepared archive among the rule's inputs")
    return len(read_npz(data_files[name])["class_names"])


def write_paper_table(name: str, spec: dict[str, Any], facts: dict[str, Any], out_csv: str, out_md: str,
                      data_files: dict[str, str] | None = None) -> None:
    """Rule report_paper_table. `spec`: the paper's `tables.<name>` entry {kind, title, studies,
    options}; `facts` (resolved from the config by the rule): access: {methods: {instance: spec}};
    params: {models, datasets, pairs} (see param_table); `data_files`: {dataset: data.npz} for
    datasets whose class count is known only once prepared (ImageFolder)."""
    kind, options = spec["kind"], dict(spec.get("options", {}))
    if kind == "access":
        csv, show = access_table(facts["methods"], options.get("paper"), bool(options.get("include_reference", False)))
        caption = ACCESS_CAPTION
    elif kind == "params":
        datasets = {d: {**ds, "num_classes": _num_classes(ds, data_files or {}, d)} for d, ds in facts["datasets"].items()}
        csv, show = param_table(facts["models"], datasets, facts["pairs"], options.get("paper"))
        caption = PARAMS_CAPTION
    else:
        raise UserError(f"paper table {name}: unknown kind {kind!r}; known: {', '.join(KINDS)}")
    if options.get("paper"):
        caption += f" Paper: {options.get('paper_note', 'the paper’s own entries, typed from the paper, for comparison')}."
    csv.insert(0, "table", name)
    write_csv(out_csv, csv)
    md = render_markdown(show, spec.get("title", name), caption, [footer()])
    write_text(out_md, md)
    print(md)
