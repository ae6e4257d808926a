"""Rule tune: choose each method's hyperparameters on the tuning cell (validation data only)."""
from unlearnbench.cli import script_main
from unlearnbench.metrics.tuning import run_tune


def main(s):
    run_tune(name=s.params.name, runs=s.params.runs, metric_files=list(s.input.metrics), out_json=s.output.json)


script_main(main, snakemake)  # noqa: F821
