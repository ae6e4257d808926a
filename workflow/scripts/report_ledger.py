"""Rule report_ledger: a paper's settings ledger (the rows were resolved from the config by the DAG)."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # noqa: F821  the library, in any environment (venv, conda, cluster)

from unlearnbench.infra.cli import script_main
from unlearnbench.report.ledger import write_ledger


def main(s, job):
    write_ledger(title=s.params.title, rows=list(s.params.rows), out_csv=s.output.csv, out_md=s.output.md)


script_main(main, snakemake)  # noqa: F821
