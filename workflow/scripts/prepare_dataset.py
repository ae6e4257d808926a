"""Rule prepare_dataset: convert a dataset source into the canonical uint8 archive."""
from unlearnbench.cli import script_main
from unlearnbench.pipeline import run_prepare_dataset

script_main(lambda s: run_prepare_dataset(s.params.spec, s.params.data_root, s.params.allow_download, s.output.data), snakemake)  # noqa: F821
