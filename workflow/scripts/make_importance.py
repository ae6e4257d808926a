"""Rule make_importance: UISPS's diagonal-Fisher parameter importance on the synthetic forget samples
and on the retain portion D'_r (a data view)."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # noqa: F821  the library, in any environment (venv, conda, cluster)

from unlearnbench.infra.warm import delegate

delegate()  # run in a fork of a process that already imported torch (unlearnbench/infra/warm.py)

from unlearnbench.infra.cli import script_main
from unlearnbench.methods.uisps.suppression import run_importance


def main(s, job):
    run_importance(job, original_ckpt=s.input.original, synthetic_npz_paths=list(s.input.inversion),
                   retain_view=s.input.retain, settings=dict(s.params.settings))


script_main(main, snakemake, wall=True)  # noqa: F821  method code: behind the OS wall
