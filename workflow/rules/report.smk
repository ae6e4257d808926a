# Stage 5: one study = one table (tidy CSV + cost sidecar + Markdown + LaTeX + gap figure); figures
# of the `figures:` group (one rule, the figure kind says which per-run files it reads); one index
# page per entry of the `papers:` group (results/papers/<paper>.md: its tables and figures).


rule report_study:
    input:
        metrics=lambda w: [f for r in study_run_records(w.study) for f in r["files"]],
        cost=lambda w: [r["cost"] for r in study_run_records(w.study)],
    output:
        csv=os.path.join(R, "tables", "{study}.csv"),
        cost=os.path.join(R, "tables", "{study}.cost.csv"),
        md=os.path.join(R, "tables", "{study}.md"),
        tex=os.path.join(R, "tables", "{study}.tex"),
        png=os.path.join(R, "figures", "{study}.png"),
    params:
        name=lambda w: w.study,
        study=lambda w: config["studies"][w.study],
        runs=lambda w: study_run_records(w.study),
        datasets=config["datasets"],
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
        png=os.path.join(R, "figures", "{figure}.png"),
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
    log:
        os.path.join(R, "logs", "report_paper", "{paper}.log"),
    conda:
        ENV
    script:
        "../scripts/report_paper.py"
