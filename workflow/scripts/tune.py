"""Rule tune: choose each method's hyperparameters on the tuning cell (validation data only)."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # noqa: F821  the library, in any environment (venv, conda, cluster)

from unlearnbench.infra.warm import delegate

delegate()  # run in a fork of a process that already imported torch (unlearnbench/infra/warm.py)

from unlearnbench.infra.cli import script_main
from unlearnbench.tuning import run_tune


def main(s, job):
    run_tune(name=s.params.name, runs=s.params.runs, metric_files=list(s.input.metrics), out_json=s.output.json,
             fingerprint=s.params.fingerprint, prefer=dict(s.params.prefer), numerics=s.params.numerics)


script_main(main, snakemake)  # noqa: F821
