"""Rule evaluate: accuracies, membership-inference attacks, divergences and weight distances."""
from unlearnbench.cli import script_main
from unlearnbench.pipeline import run_evaluate


def main(s):
    info = list(s.input.info)  # empty for reference rows
    run_evaluate(outputs=s.input.outputs, retrain_outputs=s.input.retrain_outputs, data=s.input.data,
                 split=s.input.split, request=s.input.request, ckpt=s.input.ckpt, original=s.input.original,
                 retrain=s.input.retrain, unlearn_info=info[0] if info else None, access=s.params.access,
                 seed=int(s.wildcards.seed), out_metrics=s.output.metrics, out_mia=s.output.mia)


script_main(main, snakemake)  # noqa: F821
