"""Rule make_forget_request: forget/retain indices for one scenario."""
from unlearnbench.cli import script_main
from unlearnbench.pipeline import run_make_forget_request

script_main(lambda s: run_make_forget_request(s.input.data, s.input.split, s.params.scenario, s.output.request), snakemake)  # noqa: F821
