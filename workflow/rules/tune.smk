# Stage: hyperparameter selection on a cell no table reports (config group `tuning`). The trials
# are ordinary method instances (added to the config at start-up), run by the ordinary rules.
# Tables never read this file: they run with the committed lock (tuning.py), and
# `python3.11 bootstrap.py retune ENTRY [--write]` compares this result with it.


rule tune:
    input:
        metrics=lambda w: [run_path(os.path.join(RUN_DIR, "metrics.json"), r) for r in tuning_runs(config, w.tuning)],
    output:
        json=os.path.join(R, "tuning", "{tuning}.json"),
    params:
        name=lambda w: w.tuning,
        runs=lambda w: tuning_runs(config, w.tuning),
        fingerprint=lambda w: fingerprint(config, w.tuning),
        prefer=lambda w: config["tuning"][w.tuning].get("prefer", {}),
        numerics=config["numerics"],
    log:
        os.path.join(R, "logs", "tune", "{tuning}.log"),
    localrule: True
    conda:
        ENV
    script:
        "../scripts/tune.py"
