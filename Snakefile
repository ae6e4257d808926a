# unlearnbench: machine-unlearning benchmark workflow.
#   snakemake --cores 2 results/tables/table1.csv      one table (a study)
#   snakemake --cores 2 results/papers/clue.md         one paper: every table and figure + index page
# Config: config.yaml (shared groups + table1), then every workflow/papers/<paper>/study.yaml;
# --configfile / --config on the command line override both.

import glob
import os
import sys

from snakemake.utils import min_version

min_version("8.0")

try:
    import unlearnbench  # the library (workflow/unlearnbench), installed by bootstrap.py / pip install -e .
except ImportError:
    raise SystemExit("unlearnbench is not importable: run `python3.11 bootstrap.py table1` once, "
                     "or `pip install -e .` in this checkout's environment")


from unlearnbench.config import load_config_files

# config.yaml, then every paper's study.yaml; the command line's --config / --configfile win
CONFIG_FILES = load_config_files(workflow, config, [os.path.join(workflow.basedir, "config.yaml")] +
                                 sorted(glob.glob(os.path.join(workflow.basedir, "workflow", "papers", "*", "study.yaml"))))


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
for _artefact in sorted(glob.glob(os.path.join(workflow.basedir, "workflow", "rules", "artefacts", "*.smk"))):

    include: _artefact


include: "workflow/rules/unlearn.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/tune.smk"
for _extra in sorted(glob.glob(os.path.join(workflow.basedir, "workflow", "papers", "*", "rules.smk"))):

    include: _extra



check_extras()  # every rule file has registered its per-run extras by now
if os.environ.get("UNLEARNBENCH_ASSERT_NO_TORCH") and "torch" in sys.modules:  # tests/test_layout.py
    raise SystemExit("torch was imported while building the DAG")


rule all:
    # Default target: every study table of the config (all papers: about an hour on a laptop CPU).
    input:
        all_study_targets(),
    default_target: True
