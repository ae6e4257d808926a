"""Study reports (rule report_study): collect a study's per-run metric and cost files and write
its tidy table, cost table, rendered Markdown / LaTeX and gap figure."""

from __future__ import annotations

from typing import Any

from ..infra.provenance import footer
from ..io import read_json, write_csv, write_figure, write_text
from ..metrics.cost import run_cost
from ..studies import study_setups
from .tables import aggregate, aggregate_cost, display_frame, plot_gaps, render_latex, render_markdown

DEFAULT_METRICS = ["acc_forget", "acc_retain", "acc_test_retain", "mia_svc_efficacy"]


def _used(run: dict[str, Any]) -> dict[str, list[str]]:
    """The run's cost files, its artefacts narrowed to those its unlearn job actually read (a tuned
    instance depends on every candidate artefact but uses one)."""
    files = dict(run["cost_files"])
    if run.get("unlearn_info"):
        used = read_json(run["unlearn_info"]).get("artefact_files", {})
        stems = {p.rsplit(".", 1)[0] for v in used.values() for p in ([v] if isinstance(v, str) else v)}
        files["artefacts"] = [t for t in files["artefacts"] if t[: -len(".time.json")] in stems]
    return files


def load_records(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each run lists its metric files (metrics.json + extras) and its cost file; merged per run."""
    records = []
    for r in runs:
        merged: dict[str, float] = {}
        access = r["access"]
        for path in r["files"]:
            rec = read_json(path)
            merged.update(rec["metrics"])
            access = rec.get("access", access)  # what the job actually read
        cost = run_cost(**_used(r)) if r.get("cost_files") else None
        records.append({**r, "access": access, "metrics": merged, "cost": cost})
    return records


SOURCE_NAMES = {"digits": "digits", "mnist": "MNIST", "fashionmnist": "Fashion-MNIST", "cifar10": "CIFAR-10",
                "cifar100": "CIFAR-100", "svhn": "SVHN", "imagefolder": "ImageFolder"}


def study_title(name: str, study: dict[str, Any], datasets: dict[str, Any]) -> str:
    """The study's title followed by the data and models it ran on, so that an overlay onto another
    dataset or model retitles every table: "<title> — Fashion-MNIST 28 px: resnet20"."""
    data, models = [], []
    for st in study_setups(study):
        ds = datasets[st["dataset"]]
        label = f"{SOURCE_NAMES.get(ds['source'], ds['source'])} {ds.get('image_size')} px"
        data += [label] if label not in data else []
        models += [st["model"]] if st["model"] not in models else []
    return f"{study.get('title', name)} — {', '.join(data)}: {', '.join(models)}"


def floor_text(records: list[dict[str, Any]]) -> str:
    """What the study's noise-floor row is: a second trained retrain, or another seed's gold retrain."""
    cycles = {r["method"]: r["seed_cycle"] for r in records if r.get("seed_cycle")}
    if not cycles:
        return "retrain_indep = a second, independently trained retrain (the gold standard's noise floor). "
    return "; ".join(f"{m} = the retrain of the next seed of {c} (cyclic: an independently trained gold model of "
                     "the same request, the gold standard's noise floor, at no extra training)"
                     for m, c in cycles.items()) + ". "


def study_caption(name: str, study: dict[str, Any], datasets: dict[str, Any], n_seeds: int, metrics: list[str],
                  machines: list[str], floor: str) -> str:
    parts = []
    for st in study_setups(study):
        ds = datasets[st["dataset"]]
        parts.append(f"{st['dataset']} ({ds['source']}, {ds.get('image_size')}px, {ds.get('channels')} ch) "
                     f"with {st['model']} trained by recipe {st['training']}")
    spread = ("n = 1: single runs, no spread is available; read every number as one sample" if n_seeds == 1 else
              f"mean ± std over n = {n_seeds} seeds {study['seeds']}")
    return (f"{study.get('title', name)}. Produced on: {'; '.join(parts)}. Cells: {spread}; "
            f"Δ = mean of the per-seed paired gaps |method − retrain of the same seed|; "
            f"Avg. gap = per-seed mean of Δ over {', '.join(metrics)}, mean ± std [95 % t-interval]; "
            f"'signal' after an MIA score = the attack's own balanced accuracy (LiRA: AUC) on held-out shadow data; "
            f"accuracies and MIA in %; UA convention: {study.get('ua', 'accuracy')}; "
            f"{floor}"
            f"Time = the run's step plus every artefact it consumed (Step = the unlearning step alone), "
            f"speed-up = retrain time / time; measured on {'; '.join(machines) or 'unknown'}.")


def write_study_report(name: str, study: dict[str, Any], runs: list[dict[str, Any]], datasets: dict[str, Any],
                       out_csv: str, out_cost: str, out_md: str, out_tex: str, out_png: str) -> None:
    records = load_records(runs)
    metrics = study.get("metrics") or DEFAULT_METRICS
    gap_metrics = study.get("gap_metrics") or metrics
    tidy = aggregate(records, gap_metrics)
    tidy.insert(0, "study", name)
    cost = aggregate_cost(records)
    if len(cost):
        cost.insert(0, "study", name)
    write_csv(out_csv, tidy)
    write_csv(out_cost, cost)
    title = study_title(name, study, datasets)
    caption = study_caption(name, study, datasets, len(study["seeds"]), gap_metrics, cost.attrs.get("machines", []),
                            floor_text(records))
    wide, notes = display_frame(tidy, cost, metrics, study.get("ua", "accuracy"))

    notes = notes + [footer()]
    md = render_markdown(wide, title, caption, notes)
    write_text(out_md, md)
    write_text(out_tex, render_latex(wide, caption, notes))
    write_figure(out_png, plot_gaps(tidy, metrics, title))
    print(md)
