"""Rule time_unlearn: the unlearning step timed `repeats` times (only a timing sidecar is written)."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # noqa: F821  the library, in any environment (venv, conda, cluster)

from unlearnbench.infra.warm import delegate

delegate()  # run in a fork of a process that already imported torch (unlearnbench/infra/warm.py)

from unlearnbench.infra.cli import script_main
from unlearnbench.pipeline import run_unlearn


def main(s):
    views = {k.removeprefix("view_"): str(v) for k, v in s.input.items() if k.startswith("view_")}
    artefacts = {k.removeprefix("artefact_"): (str(v) if isinstance(v, str) else [str(p) for p in v])
                 for k, v in s.input.items() if k.startswith("artefact_")}
    run_unlearn(original=s.input.original, card=s.input.card, views=views, artefacts=artefacts,
                method_spec=dict(s.params.method), tuned=s.params.tuned, seed=int(s.wildcards.seed), device=s.params.device,
                threads=s.params.threads, out_ckpt="", out_info="", out_time=s.output.time, repeats=int(s.wildcards.repeats),
                protected=list(s.params.protected), mask=s.input.get("mask"))


script_main(main, snakemake)  # noqa: F821
