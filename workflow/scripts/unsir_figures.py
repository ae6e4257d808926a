"""Rule unsir_figures: UNSIR's Figs 2-4 (forget-class predictions, layer-wise weight distances)."""
from unlearnbench.cli import script_main
from unlearnbench.unsir_figures import write_unsir_figures


def main(s):
    write_unsir_figures(s.params.runs, list(s.input.metrics), s.output)


script_main(main, snakemake)  # noqa: F821
