"""Rule unsir_noise: UNSIR's error-maximising noise for one class of one original model."""
from unlearnbench.cli import script_main
from unlearnbench.methods.unsir import run_unsir_noise


def main(s):
    run_unsir_noise(s.input.original, int(s.wildcards.cls), s.params.settings, int(s.wildcards.seed),
                    s.params.device, s.params.threads, s.output.noise, s.output.info)


script_main(main, snakemake)  # noqa: F821
