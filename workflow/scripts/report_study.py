"""Rule report_study: one study's tidy CSV, Markdown and LaTeX tables and gap figure."""
from unlearnbench.cli import script_main
from unlearnbench.report import write_study_report

script_main(lambda s: write_study_report(s.params.study_name, s.params.study, s.params.runs, s.params.datasets,
                                         s.output), snakemake)  # noqa: F821
