"""Rule report_paper: a paper's index page (its tables embedded, its figures linked)."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # noqa: F821  the library, in any environment (venv, conda, cluster)

from unlearnbench.infra.warm import delegate

delegate()  # run in a fork of a process that already imported torch (unlearnbench/infra/warm.py)

from unlearnbench.infra.cli import script_main
from unlearnbench.report.paper import run_report_paper


def main(s, job):
    run_report_paper(name=s.params.name, paper=s.params.paper, tables=list(s.input.tables),
                     figures=list(s.input.figures), out_md=s.output.md)


script_main(main, snakemake)  # noqa: F821
