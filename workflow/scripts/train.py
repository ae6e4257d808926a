"""Rules train_original and train_retrain (the retrain rule passes a forget request)."""
from unlearnbench.cli import script_main
from unlearnbench.pipeline import run_train


def main(s):
    run_train(s.input.data, s.input.split, s.input.get("request"), s.params.dataset, s.params.model,
              s.params.recipe, int(s.wildcards.seed), s.params.device, s.params.threads,
              s.output.ckpt, s.output.log, s.output.info)


script_main(main, snakemake)  # noqa: F821
