"""Study reports: collect a study's metric files and write its table files and figure."""

from __future__ import annotations

from typing import Any

from .config import study_setups
from .io import atomic_path, read_json
from .tables import aggregate, display_frame, plot_gaps, render_latex, render_markdown

DEFAULT_METRICS = ["acc_forget", "acc_retain", "acc_test_retain", "mia_svc_efficacy"]


def load_records(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each run lists its metric files (metrics.json + extras); their `metrics` dicts are merged."""
    records = []
    for r in runs:
        merged: dict[str, float] = {}
        for path in r["files"]:
            merged.update(read_json(path)["metrics"])
        records.append({**r, "metrics": merged})
    return records


def study_caption(name: str, study: dict[str, Any], datasets: dict[str, Any]) -> str:
    parts = []
    for st in study_setups(study):
        ds = datasets[st["dataset"]]
        parts.append(f"{st['dataset']} ({ds['source']}, {ds.get('image_size')}px, {ds.get('channels')} ch) "
                     f"with {st['model']} trained by recipe {st['training']}")
    return (f"{study.get('title', name)}. Produced on: {'; '.join(parts)}; seeds {study['seeds']}. "
            f"Cells: mean ± std over seeds (|gap| to retrain); accuracies and MIA in %; "
            f"UA convention: {study.get('ua', 'accuracy')}.")


def write_study_report(name: str, study: dict[str, Any], runs: list[dict[str, Any]], datasets: dict[str, Any], out: Any) -> None:
    records = load_records(runs)
    metrics = study.get("metrics") or DEFAULT_METRICS
    tidy = aggregate(records, study.get("gap_metrics") or metrics)
    tidy.insert(0, "study", name)
    with atomic_path(out.csv) as tmp:
        tidy.to_csv(tmp, index=False, float_format="%.6g")
    title, caption = study.get("title", name), study_caption(name, study, datasets)
    wide = display_frame(tidy, metrics, study.get("ua", "accuracy"))
    with atomic_path(out.md) as tmp:
        tmp.write_text(render_markdown(wide, title, caption))
    with atomic_path(out.tex) as tmp:
        tmp.write_text(render_latex(wide, caption))
    with atomic_path(out.png) as tmp:
        plot_gaps(tidy, metrics, title, str(tmp))
    print(render_markdown(wide, title, caption))
