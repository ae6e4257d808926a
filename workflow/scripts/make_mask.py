"""Rule make_mask: CLUE's first saliency mask from the original model and the forget set."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # noqa: F821  the library, in any environment (venv, conda, cluster)

from unlearnbench.infra.warm import delegate

delegate()  # run in a fork of a process that already imported torch (unlearnbench/infra/warm.py)

from unlearnbench.infra.cli import script_main
from unlearnbench.methods.clue import run_make_mask


def main(s):
    run_make_mask(original=s.input.original, forget=s.input.forget, settings=dict(s.params.settings),
                  seed=int(s.wildcards.seed), device=s.params.device, threads=s.params.threads,
                  out_mask=s.output.mask, out_info=s.output.info, out_time=s.output.time)


script_main(main, snakemake)  # noqa: F821
