"""Rule make_split: seeded, stratified train/val/test indices."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # noqa: F821  the library, in any environment (venv, conda, cluster)

from unlearnbench.infra.warm import delegate

delegate()  # run in a fork of a process that already imported torch (unlearnbench/infra/warm.py)

from unlearnbench.infra.cli import script_main
from unlearnbench.pipeline import run_make_split


def main(s, job):
    run_make_split(job, data=s.input.data, spec=s.params.spec)


script_main(main, snakemake)  # noqa: F821
