"""Rule make_split: seeded, stratified train/val/test indices."""
from unlearnbench.cli import script_main
from unlearnbench.pipeline import run_make_split

script_main(lambda s: run_make_split(s.input.data, s.params.spec, s.output.split), snakemake)  # noqa: F821
