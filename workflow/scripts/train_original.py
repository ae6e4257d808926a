"""Rule train_original: the original model on the full training split."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # noqa: F821  the library, in any environment (venv, conda, cluster)

from unlearnbench.infra.warm import delegate

delegate()  # run in a fork of a process that already imported torch (unlearnbench/infra/warm.py)

from unlearnbench.infra.cli import script_main
from unlearnbench.pipeline import run_train_original


def main(s, job):
    run_train_original(job, data=s.input.data, split=s.input.split, dataset_spec=s.params.dataset,
                       model_spec=s.params.model, recipe=s.params.recipe)


script_main(main, snakemake)  # noqa: F821
