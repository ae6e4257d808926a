"""Rule relearn_metrics: relearn time of a run and its AIN against the retrained model's."""
from unlearnbench.cli import script_main
from unlearnbench.extras import run_relearn_metrics

script_main(lambda s: run_relearn_metrics(s.input.own, s.input.retrain, s.output.json), snakemake)  # noqa: F821
