"""Rule run_cost: a run's time including its artefacts, and retrain time / that."""
from unlearnbench.cli import script_main
from unlearnbench.metrics.cost import run_cost


def main(s):
    run_cost(own=list(s.input.own), artefacts=list(s.input.artefacts), retrain=list(s.input.retrain),
             out_cost=s.output.cost)


script_main(main, snakemake)  # noqa: F821
