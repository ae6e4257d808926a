"""Rule energy_scores: mean -HFE on the forget, retain and retained-class test samples of a run."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # noqa: F821  the library, in any environment (venv, conda, cluster)

from unlearnbench.infra.warm import delegate

delegate()  # run in a fork of a process that already imported torch (unlearnbench/infra/warm.py)

from unlearnbench.infra.cli import script_main
from unlearnbench.metrics.energy import run_energy_scores


def main(s, job):
    run_energy_scores(outputs=s.input.outputs, data=s.input.data, split=s.input.split, request=s.input.request,
                      out_json=s.output.json)


script_main(main, snakemake)  # noqa: F821
