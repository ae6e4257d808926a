"""Rule relearn_measure: relearn time of one run's model (both definitions), on a copy."""
from unlearnbench.cli import script_main
from unlearnbench.relearn import run_relearn


def main(s):
    run_relearn(s.input.ckpt, s.input.original, s.input.data, s.input.split, s.input.request, s.params.settings,
                int(s.wildcards.seed), s.params.device, s.params.threads, s.output.raw)


script_main(main, snakemake)  # noqa: F821
