# unlearnbench: machine-unlearning benchmark workflow.
# Default target: every study table in config.yaml. One table: snakemake results/tables/<study>.csv

import glob
import os

from snakemake.utils import min_version

min_version("8.0")


# Base config, then each paper's study file; --configfile/--config on the command line override them.
configfile: os.path.join(workflow.basedir, "config.yaml")
for _study_file in sorted(glob.glob(os.path.join(workflow.basedir, "workflow", "studies", "*.yaml"))):

    configfile: _study_file



include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/unlearn.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


# Method-specific stages (artefacts such as noise or masks, extra metrics, paper figures).
for _rules in sorted(glob.glob(os.path.join(workflow.basedir, "workflow", "rules", "methods", "*.smk"))):

    include: _rules



rule all:
    input:
        all_study_targets(),
    default_target: True
