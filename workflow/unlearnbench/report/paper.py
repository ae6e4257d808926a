"""Paper index pages (rule report_paper): results/papers/<paper>.md embeds each of the paper's
tables (their rendered Markdown: its tables of declarations, then its studies) and links its figures."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..io import write_text

# the files a table has beside its Markdown (a study table all of them; a paper's table of
# declarations, rule report_paper_table, only the CSV)
SIBLINGS = ((".csv", " (tidy)"), (".cost.csv", " (timings)"), (".tex", ""))


def run_report_paper(name: str, paper: dict[str, Any], tables: list[str], figures: list[str], out_md: str) -> None:
    out_dir = Path(out_md).parent
    lines = [f"# {paper.get('title', name)}", ""]
    if paper.get("description"):
        lines += [paper["description"].strip(), ""]
    lines += ["Rebuild this page and everything on it with", "", "```bash",
              f"snakemake --cores 2 {out_md}", "```", "", "## Tables", ""]
    for t in tables:
        text = Path(t).read_text()
        body = text.split("\n", 1)[1] if text.startswith("# ") else text
        files = [f"`{t}`"] + [f"`{t[:-3]}{ext}`{what}" for ext, what in SIBLINGS if Path(t[:-3] + ext).exists()]
        lines += [f"### {text.splitlines()[0].lstrip('# ').strip()}", "", f"Files: {', '.join(files)}.", "",
                  body.strip(), ""]
    if figures:
        lines += ["## Figures", ""]
        for f in figures:
            rel = os.path.relpath(f, out_dir)
            lines += [f"### {Path(f).stem}", "", f"![{Path(f).stem}]({rel})", "",
                      f"Data: `{f[:-4]}.csv`.", ""]
    write_text(out_md, "\n".join(lines))
