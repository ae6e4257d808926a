"""Rule report_study: one study's tidy CSV, cost CSV, Markdown and LaTeX tables and gap figure."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # noqa: F821  the library, in any environment (venv, conda, cluster)

from unlearnbench.infra.warm import delegate

delegate()  # run in a fork of a process that already imported torch (unlearnbench/infra/warm.py)

from unlearnbench.infra.cli import script_main
from unlearnbench.report.study import write_study_report


def main(s, job):
    write_study_report(name=s.params.name, study=s.params.study, runs=s.params.runs, datasets=s.params.datasets,
                       out_csv=s.output.csv, out_cost=s.output.cost, out_md=s.output.md, out_tex=s.output.tex,
                       out_png=s.output.png)


script_main(main, snakemake)  # noqa: F821
