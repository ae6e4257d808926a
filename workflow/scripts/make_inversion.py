"""Rule make_inversion: UISPS's synthetic replacement samples of one forgotten class, from the
original model alone (no data)."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # noqa: F821  the library, in any environment (venv, conda, cluster)

from unlearnbench.infra.warm import delegate

delegate()  # run in a fork of a process that already imported torch (unlearnbench/infra/warm.py)

from unlearnbench.infra.cli import script_main
from unlearnbench.parts.inversion import run_invert_class


def main(s, job):
    run_invert_class(job, original_ckpt=s.input.original, cls=int(s.wildcards.cls),
                     settings=dict(s.params.settings))


script_main(main, snakemake, wall=True)  # noqa: F821  method code: behind the OS wall
