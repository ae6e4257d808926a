"""Rule mia_thesis: the MuGAN thesis' MIA of one run (one entropy attack, retain vs the whole test set)."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # noqa: F821  the library, in any environment (venv, conda, cluster)

from unlearnbench.infra.warm import delegate

delegate()  # run in a fork of a process that already imported torch (unlearnbench/infra/warm.py)

from unlearnbench.infra.cli import script_main
from unlearnbench.metrics.accuracy import run_mia_thesis


def main(s, job):
    run_mia_thesis(outputs=s.input.outputs, data=s.input.data, split=s.input.split, request=s.input.request,
                   out_json=s.output.json)


script_main(main, snakemake)  # noqa: F821
