"""Rule report_figure: one figure of the `figures:` group and its data."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # noqa: F821  the library, in any environment (venv, conda, cluster)

from unlearnbench.infra.warm import delegate

delegate()  # run in a fork of a process that already imported torch (unlearnbench/infra/warm.py)

from unlearnbench.infra.cli import script_main
from unlearnbench.report.figures import run_report_figure


def main(s, job):
    run_report_figure(job, spec=s.params.spec, runs=s.params.runs, tables=list(s.params.tables))


script_main(main, snakemake)  # noqa: F821
