"""Rule relearn_metrics: relearn time of a run and its AIN against the retrained model's."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # noqa: F821  the library, in any environment (venv, conda, cluster)

from unlearnbench.infra.warm import delegate

delegate()  # run in a fork of a process that already imported torch (unlearnbench/infra/warm.py)

from unlearnbench.infra.cli import script_main
from unlearnbench.metrics.cost import run_relearn_metrics


def main(s, job):
    run_relearn_metrics(own=s.input.own, retrain=s.input.retrain, out_json=s.output.json)


script_main(main, snakemake)  # noqa: F821
