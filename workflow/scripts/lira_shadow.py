"""Rule lira_shadow: one LiRA shadow model and its logits."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # noqa: F821  the library, in any environment (venv, conda, cluster)

from unlearnbench.infra.warm import delegate

delegate()  # run in a fork of a process that already imported torch (unlearnbench/infra/warm.py)

from unlearnbench.infra.cli import script_main
from unlearnbench.metrics.lira import run_lira_shadow


def main(s, job):
    run_lira_shadow(job, data=s.input.data, masks=s.input.masks, index=int(s.wildcards.index),
                    model_spec=s.params.model, recipe=s.params.recipe)


script_main(main, snakemake)  # noqa: F821
