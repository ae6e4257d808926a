"""Rule make_forget_request: forget/retain indices and the request card of one scenario."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # noqa: F821  the library, in any environment (venv, conda, cluster)

from unlearnbench.infra.warm import delegate

delegate()  # run in a fork of a process that already imported torch (unlearnbench/infra/warm.py)

from unlearnbench.infra.cli import script_main
from unlearnbench.pipeline import run_make_forget_request


def main(s, job):
    run_make_forget_request(job, data=s.input.data, split=s.input.split, scenario=s.params.scenario)


script_main(main, snakemake)  # noqa: F821
