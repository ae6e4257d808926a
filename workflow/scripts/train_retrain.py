"""Rule train_retrain: the retrained gold model (retain set only; replica r: an independent one)."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # noqa: F821  the library, in any environment (venv, conda, cluster)

from unlearnbench.infra.warm import delegate

delegate()  # run in a fork of a process that already imported torch (unlearnbench/infra/warm.py)

from unlearnbench.infra.cli import script_main
from unlearnbench.pipeline import run_train_retrain


def main(s):
    run_train_retrain(data=s.input.data, split=s.input.split, request=s.input.request, dataset_spec=s.params.dataset,
                      model_spec=s.params.model, recipe=s.params.recipe, seed=int(s.wildcards.seed),
                      replica=s.params.replica, device=s.params.device, threads=s.params.threads,
                      out_ckpt=s.output.ckpt, out_log=s.output.log, out_info=s.output.info, out_time=s.output.time, out_outputs=s.output.outputs,
                      mask=s.input.get("mask"))


script_main(main, snakemake)  # noqa: F821
