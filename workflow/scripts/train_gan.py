"""Rule train_gan: MuGAN's DCGAN of one class, trained on that class's training images."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # noqa: F821  the library, in any environment (venv, conda, cluster)

from unlearnbench.infra.warm import delegate

delegate()  # run in a fork of a process that already imported torch (unlearnbench/infra/warm.py)

from unlearnbench.infra.cli import script_main
from unlearnbench.parts.gan import run_train_gan


def main(s, job):
    run_train_gan(job, data_path=s.input.data, split_path=s.input.split, cls=int(s.wildcards.cls),
                  settings=dict(s.params.settings))


script_main(main, snakemake, wall=True)  # noqa: F821  method code: behind the OS wall
