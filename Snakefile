# unlearnbench: machine-unlearning benchmark workflow.
# Default target: every study table in config.yaml. One table: snakemake results/tables/<study>.csv

from snakemake.utils import min_version

min_version("8.0")


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/unlearn.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        all_study_targets(),
    default_target: True
