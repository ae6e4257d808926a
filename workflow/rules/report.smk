# Stage 5: one study = one table (tidy CSV + cost sidecar + Markdown + LaTeX + gap figure); figures
# of the `figures:` group (one rule, the figure kind says which per-run files it reads); one index
# page per entry of the `papers:` group (results/papers/<paper>.md: its tables and figures); the
# tables of declarations a paper lists under `tables:` (rule report_paper_table).

from unlearnbench.report.paper_specs import paper_tables, table_data, table_facts


rule report_study:
    input:
        metrics=lambda w: [f for r in study_run_records(w.study) for f in r["files"]],
        cost=lambda w: sorted({f for r in study_run_records(w.study) for fs in r["cost_files"].values() for f in fs}),
        infos=lambda w: [r["unlearn_info"] for r in study_run_records(w.study) if r["unlearn_info"]],
    output:
        csv=report(os.path.join(R, "tables", "{study}.csv"), category="Tables", subcategory="{study}", labels={"file": "tidy table"}),
        cost=report(os.path.join(R, "tables", "{study}.cost.csv"), category="Tables", subcategory="{study}",
                    labels={"file": "timings"}),
        md=report(os.path.join(R, "tables", "{study}.md"), category="Tables", subcategory="{study}",
                  labels={"file": "rendered (with provenance)"}),
        tex=os.path.join(R, "tables", "{study}.tex"),
        png=report(os.path.join(R, "figures", "{study}.png"), category="Tables", subcategory="{study}",
                   labels={"file": "gap to retrain"}),
    params:
        name=lambda w: w.study,
        study=lambda w: config["studies"][w.study],
        runs=lambda w: study_run_records(w.study),
        datasets=config["datasets"],
    localrule: True
    log:
        os.path.join(R, "logs", "report_study", "{study}.log"),
    conda:
        ENV
    script:
        "../scripts/report_study.py"


rule report_figure:
    input:
        lambda w: figure_inputs(w.figure)["files"],
    output:
        png=report(os.path.join(R, "figures", "{figure}.png"), category="Figures", labels={"figure": "{figure}"}),
        data=os.path.join(R, "figures", "{figure}.csv"),
    params:
        spec=lambda w: config["figures"][w.figure],
        runs=lambda w: figure_inputs(w.figure)["runs"],
        tables=lambda w: figure_inputs(w.figure)["tables"],
        device=DEVICE,
        threads=THREADS,
    log:
        os.path.join(R, "logs", "report_figure", "{figure}.log"),
    threads: THREADS
    conda:
        ENV
    script:
        "../scripts/report_figure.py"


# ----------------------------------------------------------------------------- paper tables
# A paper's `tables:` entries are tables of what the code declares, not of runs: kind "access" (each
# compared method's declared data access) and kind "params" (parameter counts from the model
# registry); report/paper_specs.py resolves them from the config, report/paper_tables.py renders them.
# They share results/tables/ with the studies, so a name is either one or the other (checked here).
try:
    PAPER_TABLES = paper_tables(config)
except UserError as e:
    raise SystemExit(f"config error: {e}")


rule report_paper_table:
    # a paper's table of declarations (no run): results/tables/<table>.{csv,md} (report/paper_tables.py)
    input:
        lambda w: sorted(table_data(config, PAPER_TABLES[w.table], R).values()),
    output:
        csv=report(os.path.join(R, "tables", "{table}.csv"), category="Tables", subcategory="{table}", labels={"file": "table"}),
        md=report(os.path.join(R, "tables", "{table}.md"), category="Tables", subcategory="{table}",
                  labels={"file": "rendered (with provenance)"}),
    wildcard_constraints:
        table=names_regex(PAPER_TABLES),
    params:
        name=lambda w: w.table,
        spec=lambda w: PAPER_TABLES[w.table],
        facts=lambda w: table_facts(config, PAPER_TABLES[w.table]),
        data=lambda w: table_data(config, PAPER_TABLES[w.table], R),
    localrule: True
    log:
        os.path.join(R, "logs", "report_paper_table", "{table}.log"),
    conda:
        ENV
    script:
        "../scripts/report_paper_table.py"


rule report_paper:
    input:
        # the paper's tables of declarations first (Tables 1-2 of a paper come before its results), then its studies
        tables=lambda w: expand(os.path.join(R, "tables", "{table}.md"), table=list(config["papers"][w.paper].get("tables", {})))
        + expand(os.path.join(R, "tables", "{study}.md"), study=config["papers"][w.paper]["studies"]),
        figures=lambda w: expand(os.path.join(R, "figures", "{figure}.png"), figure=config["papers"][w.paper].get("figures", [])),
    output:
        md=os.path.join(R, "papers", "{paper}.md"),
    params:
        name=lambda w: w.paper,
        paper=lambda w: config["papers"][w.paper],
    localrule: True
    log:
        os.path.join(R, "logs", "report_paper", "{paper}.log"),
    conda:
        ENV
    script:
        "../scripts/report_paper.py"


rule report_claims:
    # A paper's headline claims, each a paired comparison over seeds of two rows (or a row and the
    # paper's constant) of one of its tables: results/papers/<paper>.claims.{csv,md} (report/claims.py).
    input:
        lambda w: claims_inputs(w.paper),
    output:
        csv=os.path.join(R, "papers", "{paper}.claims.csv"),
        md=report(os.path.join(R, "papers", "{paper}.claims.md"), category="Claims", labels={"paper": "{paper}"}),
    params:
        name=lambda w: w.paper,
        paper=lambda w: config["papers"][w.paper],
        runs=lambda w: {s: study_run_records(s) for s in claim_studies(w.paper)},
        studies=lambda w: {s: config["studies"][s] for s in claim_studies(w.paper)},
    localrule: True
    log:
        os.path.join(R, "logs", "report_claims", "{paper}.log"),
    conda:
        ENV
    script:
        "../scripts/report_claims.py"


rule report_ledger:
    # A paper's settings ledger: each setting the paper states, its code's value, our paper-exact and
    # tuned values read from the config and the locks (report/ledger.py): results/papers/<paper>.ledger.md.
    # No input files: the values are params, so a changed setting or lock reruns it.
    output:
        csv=os.path.join(R, "papers", "{paper}.ledger.csv"),
        md=report(os.path.join(R, "papers", "{paper}.ledger.md"), category="Settings", labels={"paper": "{paper}"}),
    params:
        title=lambda w: config["papers"][w.paper].get("title", w.paper),
        rows=lambda w: ledger_rows(config, w.paper, LOCKS),
    localrule: True
    log:
        os.path.join(R, "logs", "report_ledger", "{paper}.log"),
    conda:
        ENV
    script:
        "../scripts/report_ledger.py"
