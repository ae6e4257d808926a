"""unlearnbench: a reproducible benchmark of machine-unlearning methods for image classifiers.

The package is the tested library behind the Snakemake workflow: every rule script is a thin
wrapper around one function here.
"""

__version__ = "0.1.0"
