"""Rule train_gan: MuGAN's DCGAN of one class, trained on that class's training images."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # noqa: F821  the library, in any environment (venv, conda, cluster)

from unlearnbench.infra.warm import delegate

delegate()  # run in a fork of a process that already imported torch (unlearnbench/infra/warm.py)

from unlearnbench.infra.cli import script_main
from unlearnbench.parts.gan import run_train_gan


def main(s):
    run_train_gan(data_path=s.input.data, split_path=s.input.split, cls=int(s.wildcards.cls),
                  settings=dict(s.params.settings), seed=int(s.wildcards.seed), device=s.params.device,
                  threads=s.params.threads, out_generator=s.output.generator, out_info=s.output.info,
                  out_time=s.output.time)


script_main(main, snakemake)  # noqa: F821
