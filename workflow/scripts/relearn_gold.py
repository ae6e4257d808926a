"""Rule relearn_gold: relearn time of AIN's reference-style gold model (both definitions), on a copy."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # noqa: F821  the library, in any environment (venv, conda, cluster)

from unlearnbench.infra.warm import delegate

delegate()  # run in a fork of a process that already imported torch (unlearnbench/infra/warm.py)

from unlearnbench.infra.cli import script_main
from unlearnbench.metrics.relearn import run_relearn_measure


def main(s, job):
    run_relearn_measure(job, ckpt=s.input.ckpt, original=s.input.original, data=s.input.data, split=s.input.split,
                        request=s.input.request, settings_=s.params.settings)


script_main(main, snakemake)  # noqa: F821
