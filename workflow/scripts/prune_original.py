"""Rule prune_original: a 95 %-sparse (OMP) variant of the original model, and its mask."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # noqa: F821  the library, in any environment (venv, conda, cluster)

from unlearnbench.infra.warm import delegate

delegate()  # run in a fork of a process that already imported torch (unlearnbench/infra/warm.py)

from unlearnbench.infra.cli import script_main
from unlearnbench.parts.pruning import run_prune_original


def main(s, job):
    run_prune_original(job, data=s.input.data, split=s.input.split, original=s.input.original,
                       dataset_spec=s.params.dataset, model_spec=s.params.model, recipe=s.params.recipe,
                       prune=dict(s.params.prune))


script_main(main, snakemake)  # noqa: F821
