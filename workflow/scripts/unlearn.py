"""Rule unlearn: apply one method instance to the original model, recording time and memory."""
from unlearnbench.cli import script_main
from unlearnbench.pipeline import run_unlearn


def main(s):
    artefacts = {k: str(v) for k, v in s.input.items() if k.startswith("artefact_")}
    run_unlearn(s.input.data, s.input.split, s.input.request, s.input.original, s.params.method,
                int(s.wildcards.seed), s.params.device, s.params.threads,
                {k.removeprefix("artefact_"): v for k, v in artefacts.items()}, s.output.ckpt, s.output.info)


script_main(main, snakemake)  # noqa: F821
