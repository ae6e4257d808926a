"""Rule lira_masks: the LiRA shadow pool and inclusion masks."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # noqa: F821  the library, in any environment (venv, conda, cluster)

from unlearnbench.infra.warm import delegate

delegate()  # run in a fork of a process that already imported torch (unlearnbench/infra/warm.py)

from unlearnbench.infra.cli import script_main
from unlearnbench.metrics.lira import run_lira_masks


def main(s, job):
    run_lira_masks(data=s.input.data, split=s.input.split, settings=dict(s.params.settings), out_masks=s.output.masks)


script_main(main, snakemake)  # noqa: F821
