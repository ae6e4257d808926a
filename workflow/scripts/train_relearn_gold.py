"""Rule train_relearn_gold: AIN's reference-style gold model (N epochs on a fraction of the retain set)."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # noqa: F821  the library, in any environment (venv, conda, cluster)

from unlearnbench.infra.warm import delegate

delegate()  # run in a fork of a process that already imported torch (unlearnbench/infra/warm.py)

from unlearnbench.infra.cli import script_main
from unlearnbench.pipeline import run_train_relearn_gold


def main(s, job):
    run_train_relearn_gold(job, data=s.input.data, split=s.input.split, request=s.input.request,
                           dataset_spec=s.params.dataset, model_spec=s.params.model, recipe=s.params.recipe,
                           gold=dict(s.params.gold), mask=s.input.get("mask"))


script_main(main, snakemake)  # noqa: F821
