"""Reports: study tables (study.py, tables.py), figures by kind (figures/), paper index pages (paper.py)."""
