"""Rule record_update_log: Amnesiac's update log, recorded by replaying the original's training."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # noqa: F821  the library, in any environment (venv, conda, cluster)

from unlearnbench.infra.warm import delegate

delegate()  # run in a fork of a process that already imported torch (unlearnbench/infra/warm.py)

from unlearnbench.infra.cli import script_main
from unlearnbench.methods.amnesiac.update_log import run_record_update_log


def main(s, job):
    run_record_update_log(job, data=s.input.data, split=s.input.split, original=s.input.original,
                          classes=[int(c) for c in s.wildcards.classes.split("-")], settings=dict(s.params.settings),
                          model_spec=dict(s.params.model), recipe=dict(s.params.recipe))


script_main(main, snakemake, wall=True)  # noqa: F821  method code: behind the OS wall
