"""The config side of a paper's tables of declarations (`papers.<paper>.tables`, rule
report_paper_table; rendered by report/paper_tables.py). Torch-free: Snakemake resolves these while it
builds the DAG, so a changed method or model entry reruns the table through its params."""

from __future__ import annotations

from typing import Any

from ..data import NUM_CLASSES
from ..errors import UserError
from ..studies import study_setups


def paper_tables(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{table name: its entry} over every paper, checked: a name is neither a study (both would write
    results/tables/<name>.csv) nor another paper's table; its studies, models and datasets exist."""
    out: dict[str, dict[str, Any]] = {}
    for paper, p in config.get("papers", {}).items():
        for name, t in p.get("tables", {}).items():
            where = f"papers.{paper}.tables.{name}"
            if name in out or name in config["studies"]:
                what = "study" if name in config["studies"] else "table of another paper"
                raise UserError(f"{where}: the name {name!r} is already a {what} "
                                f"(both would write results/tables/{name}.csv); rename it")
            for s in t["studies"]:
                if s not in config["studies"]:
                    raise UserError(f"{where}: unknown study {s!r}")
            for group in ("models", "datasets"):
                for n in t.get("options", {}).get(group, []):
                    if n not in config[group]:
                        raise UserError(f"{where}.options.{group}: unknown {group[:-1]} {n!r}")
            out[name] = t
    return out


def _arch_spec(config: dict[str, Any], model: str) -> dict[str, Any]:
    """The architecture a model entry builds (a pruned variant: its base's, with its sparsity)."""
    m = config["models"][model]
    if "prune" in m:
        return {**_arch_spec(config, m["base"]), "sparsity": m["prune"]["sparsity"]}
    return dict(m)


def table_facts(config: dict[str, Any], table: dict[str, Any]) -> dict[str, Any]:
    """What a paper table reads from the config.
    access: {methods: {instance: spec}}, the instances of its studies in first-appearance order;
    params: {models: {entry: arch spec}, datasets: {name: source, image_size, channels, num_classes
    (None where only the prepared archive knows it)}, pairs: [{model, dataset, studies}]}: the
    (model, dataset) pairs its studies train, then every model of the table (the studies' and
    `options.models`) at each of `options.datasets`."""
    if table["kind"] == "access":
        instances = dict.fromkeys(m for s in table["studies"] for m in config["studies"][s]["methods"])
        return {"methods": {m: config["methods"][m] for m in instances}}
    pairs: dict[tuple[str, str], list[str]] = {}
    for s in table["studies"]:
        for st in study_setups(config["studies"][s]):
            pairs.setdefault((st["model"], st["dataset"]), []).append(s)
    opts = table.get("options", {})
    models = list(dict.fromkeys([m for m, _ in pairs] + list(opts.get("models", []))))
    for d in opts.get("datasets", []):
        for m in models:
            pairs.setdefault((m, d), [])
    datasets = {}
    for _, d in pairs:
        ds = config["datasets"][d]
        datasets[d] = {"source": ds["source"], "image_size": ds.get("image_size", 32), "channels": ds.get("channels", 3),
                       "num_classes": NUM_CLASSES.get(ds["source"])}
    return {"models": {m: _arch_spec(config, m) for m in models}, "datasets": datasets,
            "pairs": [{"model": m, "dataset": d, "studies": ss} for (m, d), ss in pairs.items()]}


def table_data(config: dict[str, Any], table: dict[str, Any], results: str = "results") -> dict[str, str]:
    """{dataset: data.npz} of a params table's datasets whose class count only the prepared archive knows."""
    if table["kind"] != "params":
        return {}
    return {d: f"{results}/data/{d}/data.npz" for d, ds in table_facts(config, table)["datasets"].items()
            if ds["num_classes"] is None}
