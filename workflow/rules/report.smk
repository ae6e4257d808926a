# Stage 5: one study = one table (tidy CSV + Markdown + LaTeX) and its gap figure.


rule report_study:
    input:
        metrics=lambda w: study_metric_files(w.study),
    output:
        csv=os.path.join(R, "tables/{study}.csv"),
        md=os.path.join(R, "tables/{study}.md"),
        tex=os.path.join(R, "tables/{study}.tex"),
        png=os.path.join(R, "figures/{study}.png"),
    params:
        study_name=lambda w: w.study,
        study=lambda w: config["studies"][w.study],
        runs=lambda w: study_run_records(w.study),
        datasets=lambda w: config["datasets"],
    log:
        os.path.join(R, "logs/report_study/{study}.log"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/unlearnbench.yaml"
    script:
        "../scripts/report_study.py"
