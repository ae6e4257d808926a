"""Rule data_view: one data set a method may read (forget, retain, val, a retain subset)."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # noqa: F821  the library, in any environment (venv, conda, cluster)

from unlearnbench.infra.warm import delegate

delegate()  # run in a fork of a process that already imported torch (unlearnbench/infra/warm.py)

from unlearnbench.infra.cli import script_main
from unlearnbench.pipeline import run_data_view


def main(s, job):
    run_data_view(job, data=s.input.data, split=s.input.split, request=s.input.request, view=s.wildcards.view)


script_main(main, snakemake)  # noqa: F821
