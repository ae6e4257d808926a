"""Rule make_synthetic: the class-filtered synthetic dataset of MuGAN (kind gan) or zMuGAN (kind
inversion), and its image grid."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # noqa: F821  the library, in any environment (venv, conda, cluster)

from unlearnbench.infra.warm import delegate

delegate()  # run in a fork of a process that already imported torch (unlearnbench/infra/warm.py)

from unlearnbench.infra.cli import script_main
from unlearnbench.parts.synthetic import run_make_synthetic


def main(s, job):
    run_make_synthetic(job, original_ckpt=s.input.original, generator_paths=[str(p) for p in s.input.generators],
                       kind=s.wildcards.kind, settings=dict(s.params.settings))


script_main(main, snakemake, wall=True)  # noqa: F821  method code: behind the OS wall
