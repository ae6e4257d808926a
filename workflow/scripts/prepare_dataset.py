"""Rule prepare_dataset: convert a dataset source into the canonical uint8 archive."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # noqa: F821  the library, in any environment (venv, conda, cluster)

from unlearnbench.infra.warm import delegate

delegate()  # run in a fork of a process that already imported torch (unlearnbench/infra/warm.py)

from unlearnbench.infra.cli import script_main
from unlearnbench.pipeline import run_prepare_dataset


def main(s, job):
    run_prepare_dataset(job, spec=s.params.spec, data_root=s.params.data_root,
                        allow_download=s.params.allow_download)


script_main(main, snakemake)  # noqa: F821
