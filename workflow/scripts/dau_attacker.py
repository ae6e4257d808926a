"""Rule dau_attacker: DAU's attacker pretrained against the original model on the forget and
validation data views."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # noqa: F821  the library, in any environment (venv, conda, cluster)

from unlearnbench.infra.warm import delegate

delegate()  # run in a fork of a process that already imported torch (unlearnbench/infra/warm.py)

from unlearnbench.infra.cli import script_main
from unlearnbench.methods.dau.attacker import run_pretrain_attacker


def main(s, job):
    run_pretrain_attacker(job, original_ckpt=s.input.original, forget_view=s.input.forget, val_view=s.input.val,
                          settings=dict(s.params.settings))


script_main(main, snakemake, wall=True)  # noqa: F821  method code: behind the OS wall
