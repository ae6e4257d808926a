"""Rule relearn_metrics: relearn time of a run and its AIN against the retrained model's."""
from unlearnbench.cli import script_main
from unlearnbench.metrics.cost import run_relearn_metrics


def main(s):
    run_relearn_metrics(own=s.input.own, retrain=s.input.retrain, out_json=s.output.json)


script_main(main, snakemake)  # noqa: F821
