"""Rule evaluate: accuracies, membership-inference attacks, divergences and weight distances."""
from unlearnbench.cli import script_main
from unlearnbench.pipeline import run_evaluate


def main(s):
    time = list(s.input.get("time", []))  # empty for the original model
    run_evaluate(s.input.outputs, s.input.retrain_outputs, s.input.data, s.input.split, s.input.request,
                 s.input.ckpt, s.input.original, s.input.retrain, time[0] if time else None, int(s.wildcards.seed),
                 s.output.metrics, s.output.mia)


script_main(main, snakemake)  # noqa: F821
