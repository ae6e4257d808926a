#!/usr/bin/env python3
"""Fill the READMEs' measured tables from the benchmark builds, so that no measured number is copied
into a README by hand.

A README marks each generated block with

    <!-- generated: <benchmark> <study> -->
    ... (replaced) ...
    <!-- end generated -->

and this script replaces the block with the rendered table `results/tables/<study>.md` of the cold
build `bootstrap.py bench` made for <benchmark> (benchmarks/out/work_<benchmark>/), headed by the
build's record (benchmarks/out/<benchmark>.json): the commit, the machine, its load average before
the run, the numerics mode, the wall time. `--check` exits 1 when a block would change.

    python3.11 bootstrap.py bench --only table1 mugan     # the cold builds and their records
    .venv/bin/python benchmarks/readme_tables.py          # rewrite every README's generated blocks
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out"
BLOCK = re.compile(r"(<!-- generated: (\S+) (\S+) -->\n)(.*?)(<!-- end generated -->)", re.S)


def header(record: dict) -> str:
    m = record["machine"]
    load = ", ".join(f"{v:.2f}" for v in record["load_before"])
    return (f"*Generated from the cold build of `{' '.join(record['targets'])}` by `bootstrap.py bench` at commit "
            f"{record['commit']} ({record['date']}): {m['cpu']}, {m['cpu_count']} cores, load average before the run "
            f"{load} (1, 5, 15 min), numerics {record.get('numerics', 'portable')}, {record['cores']} Snakemake cores, "
            f"{record['jobs']} jobs in {record['cold_s']:.0f} s.*\n\n")


def table(benchmark: str, study: str) -> str:
    md = OUT / f"work_{benchmark}" / "results" / "tables" / f"{study}.md"
    rec = OUT / f"{benchmark}.json"
    if not md.exists() or not rec.exists():
        raise SystemExit(f"readme_tables: no build of {benchmark} with {study} ({md}); run "
                         f"`python3.11 bootstrap.py bench --only {benchmark}` first")
    body = md.read_text().split("\n", 1)[1].strip()  # the rendered table without its '# title' line
    body = "\n".join(l for l in body.splitlines() if not l.startswith("Provenance:"))  # the header says it
    return header(json.loads(rec.read_text())) + body + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when a generated block is out of date")
    args = ap.parse_args()
    stale = []
    for readme in [REPO / "README.md", *sorted((REPO / "workflow" / "papers").glob("*/README.md"))]:
        text = readme.read_text()
        new = BLOCK.sub(lambda m: m.group(1) + table(m.group(2), m.group(3)) + m.group(5), text)
        if new != text:
            stale.append(readme.relative_to(REPO))
            if not args.check:
                readme.write_text(new)
    print(("out of date: " if args.check else "rewrote: ") + (", ".join(map(str, stale)) or "nothing"))
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
