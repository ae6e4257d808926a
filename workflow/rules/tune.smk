# Stage: hyperparameter selection on a cell no table reports (config group `tuning`). The trials
# are ordinary method instances (added to the config at start-up), run by the ordinary rules.


rule tune:
    input:
        metrics=lambda w: [run_path(os.path.join(RUN_DIR, "metrics.json"), r) for r in tuning_runs(config, w.tuning)],
    output:
        json=os.path.join(R, "tuning", "{tuning}.json"),
    params:
        name=lambda w: w.tuning,
        runs=lambda w: tuning_runs(config, w.tuning),
    log:
        os.path.join(R, "logs", "tune", "{tuning}.log"),
    localrule: True
    conda:
        ENV
    script:
        "../scripts/tune.py"
