"""Rule report_paper_table: a paper's table of declarations (method data access, parameter counts)."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # noqa: F821  the library, in any environment (venv, conda, cluster)

from unlearnbench.infra.warm import delegate

delegate()  # run in a fork of a process that already imported torch (unlearnbench/infra/warm.py)

from unlearnbench.infra.cli import script_main
from unlearnbench.report.paper_tables import write_paper_table


def main(s, job):
    write_paper_table(name=s.params.name, spec=s.params.spec, facts=s.params.facts, out_csv=s.output.csv,
                      out_md=s.output.md, data_files=dict(s.params.data))


script_main(main, snakemake)  # noqa: F821
