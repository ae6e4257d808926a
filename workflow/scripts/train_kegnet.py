"""Rule train_kegnet: one member of zMuGAN's inversion ensemble, from the original model alone."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # noqa: F821  the library, in any environment (venv, conda, cluster)

from unlearnbench.infra.warm import delegate

delegate()  # run in a fork of a process that already imported torch (unlearnbench/infra/warm.py)

from unlearnbench.infra.cli import script_main
from unlearnbench.parts.kegnet import run_train_inversion


def main(s, job):
    run_train_inversion(job, original_ckpt=s.input.original, settings=dict(s.params.settings),
                        member=int(s.wildcards.member))


script_main(main, snakemake, wall=True)  # noqa: F821  method code: behind the OS wall
