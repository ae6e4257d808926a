"""Rule evaluate: an unlearned run's logits, then its accuracies, MIAs, divergences and distances."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # noqa: F821  the library, in any environment (venv, conda, cluster)

from unlearnbench.infra.warm import delegate

delegate()  # run in a fork of a process that already imported torch (unlearnbench/infra/warm.py)

from unlearnbench.infra.cli import script_main
from unlearnbench.pipeline import run_evaluate


def main(s, job):
    run_evaluate(job, ckpt=s.input.ckpt, retrain_outputs=s.input.retrain_outputs, data=s.input.data,
                 split=s.input.split, request=s.input.request, original=s.input.original, retrain=s.input.retrain,
                 unlearn_info=s.input.info, access=s.params.access)


script_main(main, snakemake)  # noqa: F821
