"""Rule unsir_noise_set: the manifest of one forget request's per-class UNSIR noise files."""
from unlearnbench.cli import script_main
from unlearnbench.extras import run_noise_set

script_main(lambda s: run_noise_set(list(s.params.classes), list(s.input), s.output.manifest), snakemake)  # noqa: F821
