# Stage 5: one study = one table (tidy CSV + cost sidecar + Markdown + LaTeX + gap figure); figures
# of the `figures:` group (one rule, the figure kind says which per-run files it reads); one index
# page per entry of the `papers:` group (results/papers/<paper>.md: its tables and figures).


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


rule report_paper:
    input:
        tables=lambda w: expand(os.path.join(R, "tables", "{study}.md"), study=config["papers"][w.paper]["studies"]),
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
