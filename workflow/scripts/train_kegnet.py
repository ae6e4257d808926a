"""Rule train_kegnet: one member of zMuGAN's inversion ensemble, from the original model alone."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # noqa: F821  the library, in any environment (venv, conda, cluster)

from unlearnbench.infra.warm import delegate

delegate()  # run in a fork of a process that already imported torch (unlearnbench/infra/warm.py)

from unlearnbench.infra.cli import script_main
from unlearnbench.parts.kegnet import run_train_inversion


def main(s):
    run_train_inversion(original_ckpt=s.input.original, settings=dict(s.params.settings), seed=int(s.wildcards.seed),
                        member=int(s.wildcards.member), device=s.params.device, threads=s.params.threads,
                        out_generator=s.output.generator, out_info=s.output.info, out_time=s.output.time)


script_main(main, snakemake)  # noqa: F821
