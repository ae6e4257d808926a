"""Rule make_mask: CLUE's first saliency mask from the original model and the forget set."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # noqa: F821  the library, in any environment (venv, conda, cluster)

from unlearnbench.infra.warm import delegate

delegate()  # run in a fork of a process that already imported torch (unlearnbench/infra/warm.py)

from unlearnbench.infra.cli import script_main
from unlearnbench.methods.clue import run_make_mask


def main(s, job):
    run_make_mask(job, original=s.input.original, forget=s.input.forget, settings=dict(s.params.settings))


script_main(main, snakemake, wall=True)  # noqa: F821  method code: behind the OS wall
