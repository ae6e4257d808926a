"""Rule predict: logits of one model on every sample."""
from unlearnbench.cli import script_main
from unlearnbench.pipeline import run_predict


def main(s):
    run_predict(ckpt=s.input.ckpt, data=s.input.data, device=s.params.device, threads=s.params.threads,
                out_outputs=s.output.outputs)


script_main(main, snakemake)  # noqa: F821
