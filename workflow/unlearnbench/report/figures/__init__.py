"""Figure kinds: one module per kind of figure, shared by every paper (prediction histograms,
layer-wise distances, score densities, t-SNE, cost bars...).

A kind module declares `READS`, the per-run files it draws from ("metrics", "outputs",
"checkpoint", "data", "split", "request") or ("table",) for kinds that draw study tables, and
`draw(runs, tables, options, device, threads) -> (matplotlib figure, pandas DataFrame of the plotted
data)`. `runs` are the figure's selected runs (study cells), each with a "files" dict {read: path}.
Kind modules import matplotlib, pandas and torch inside `draw` only: Snakemake reads `READS` while
it builds the DAG.
"""

from __future__ import annotations

import importlib
import pkgutil
import textwrap
from typing import Any

from ...io import write_csv, write_figure
from ...errors import UserError
from ...runtime import Job


def list_kinds() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def _module(kind: str):
    if kind not in list_kinds():
        raise UserError(f"unknown figure kind {kind!r}; available: {', '.join(list_kinds())}")
    return importlib.import_module(f"{__name__}.{kind}")


def figure_reads(kind: str) -> tuple[str, ...]:
    return tuple(_module(kind).READS)


def pyplot():
    """matplotlib.pyplot with the file-only Agg backend (rules run without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def run_report_figure(job: Job, spec: dict[str, Any], runs: list[dict], tables: list[str]) -> None:
    """Rule report_figure: draw one configured figure and write its data next to it."""

    fig, frame = _module(spec["kind"]).draw(runs, tables, dict(spec.get("options", {})), job.device, job.threads)
    if spec.get("title"):
        # wrapped to the figure's width (about 12 characters of 10-pt text per inch): a long title on
        # a narrow figure is not cut off at the edges; a title that fits is left as it is
        fig.suptitle(textwrap.fill(spec["title"], max(40, int(fig.get_figwidth() * 12))), fontsize=10)
        fig.tight_layout()
    write_figure(job.out["png"], fig)
    write_csv(job.out["data"], frame)
