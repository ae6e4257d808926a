"""Rule record_update_log: Amnesiac's update log, recorded by replaying the original's training."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # noqa: F821  the library, in any environment (venv, conda, cluster)

from unlearnbench.infra.warm import delegate

delegate()  # run in a fork of a process that already imported torch (unlearnbench/infra/warm.py)

from unlearnbench.infra.cli import script_main
from unlearnbench.methods.amnesiac.update_log import run_record_update_log


def main(s):
    run_record_update_log(data=s.input.data, split=s.input.split, original=s.input.original,
                          classes=[int(c) for c in s.wildcards.classes.split("-")], settings=dict(s.params.settings),
                          model_spec=dict(s.params.model), recipe=dict(s.params.recipe), seed=int(s.wildcards.seed),
                          device=s.params.device, threads=s.params.threads, out_log=s.output.log,
                          out_info=s.output.info, out_time=s.output.time)


script_main(main, snakemake)  # noqa: F821
