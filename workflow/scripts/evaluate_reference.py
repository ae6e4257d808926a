"""Rule evaluate_reference: metrics of the original or a retrained model from its logits."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # noqa: F821  the library, in any environment (venv, conda, cluster)

from unlearnbench.infra.warm import delegate

delegate()  # run in a fork of a process that already imported torch (unlearnbench/infra/warm.py)

from unlearnbench.infra.cli import script_main
from unlearnbench.pipeline import run_evaluate_reference


def main(s, job):
    run_evaluate_reference(job, outputs=s.input.outputs, retrain_outputs=s.input.retrain_outputs, data=s.input.data,
                           split=s.input.split, request=s.input.request, ckpt=s.input.ckpt,
                           original=s.input.original, retrain=s.input.retrain, unlearn_info=None,
                           access=s.params.access)


script_main(main, snakemake)  # noqa: F821
