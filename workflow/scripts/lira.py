"""Rule lira: LiRA membership metrics of one run."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # noqa: F821  the library, in any environment (venv, conda, cluster)

from unlearnbench.infra.warm import delegate

delegate()  # run in a fork of a process that already imported torch (unlearnbench/infra/warm.py)

from unlearnbench.infra.cli import script_main
from unlearnbench.metrics.lira import run_lira_metrics


def main(s, job):
    run_lira_metrics(outputs=s.input.outputs, shadows=list(s.input.shadows), masks=s.input.masks, data=s.input.data,
                     split=s.input.split, request=s.input.request, settings=dict(s.params.settings), out_json=s.output.json)


script_main(main, snakemake)  # noqa: F821
