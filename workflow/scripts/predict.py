"""Rule predict: logits of one model on every sample."""
from unlearnbench.cli import script_main
from unlearnbench.pipeline import run_predict

script_main(lambda s: run_predict(s.input.ckpt, s.input.data, s.params.device, s.params.threads, s.output.outputs), snakemake)  # noqa: F821
