"""Rules unlearn and time_unlearn: apply one method instance to the original model, given only its
declared inputs (time_unlearn: k times from the same state, writing only the timing file)."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/..")  # noqa: F821  the library, in any environment (venv, conda, cluster)

from unlearnbench.infra.warm import delegate

delegate()  # run in a fork of a process that already imported torch (unlearnbench/infra/warm.py)

from unlearnbench.infra.cli import script_main
from unlearnbench.methods import create_method
from unlearnbench.pipeline import run_unlearn


def main(s, job):
    views = {k.removeprefix("view_"): str(v) for k, v in s.input.items() if k.startswith("view_")}
    artefacts = {k.removeprefix("artefact_"): (str(v) if isinstance(v, str) else [str(p) for p in v])
                 for k, v in s.input.items() if k.startswith("artefact_")}
    spec = dict(s.params.method)  # the instance's config block, with its locked tuned values (unlearn.smk)
    run_unlearn(job, create_method(spec), spec, original=s.input.original, card=s.input.card, views=views,
                artefacts=artefacts, tuned=s.params.tuned, protected=list(s.params.protected), mask=s.input.get("mask"),
                repeats=int(s.wildcards.get("repeats", 0)), model_spec=dict(s.params.model))  # rule time_unlearn: the step k times, a timing file only


script_main(main, snakemake, wall=True)  # noqa: F821  method code: behind the OS wall
