"""Rule time_total: unlearning time including artefacts (UNSIR's noise) and retrain time / that."""
from unlearnbench.cli import script_main
from unlearnbench.extras import run_time_total


def main(s):
    time = list(s.input.get("time", []))  # empty for the original model
    run_time_total(time[0] if time else None, s.input.retrain, s.output.json)


script_main(main, snakemake)  # noqa: F821
