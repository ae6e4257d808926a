"""Rule report_claims: a paper's headline claims checked against its tables' cells, seed by seed."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # noqa: F821  the library, in any environment (venv, conda, cluster)

from unlearnbench.infra.warm import delegate

delegate()  # run in a fork of a process that already imported torch (unlearnbench/infra/warm.py)

from unlearnbench.infra.cli import script_main
from unlearnbench.report.claims import write_claims


def main(s, job):
    write_claims(name=s.params.name, paper=s.params.paper, runs=dict(s.params.runs), studies=dict(s.params.studies),
                 out_csv=s.output.csv, out_md=s.output.md)


script_main(main, snakemake)  # noqa: F821
