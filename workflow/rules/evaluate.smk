# Stage 4: model outputs on every sample, metrics (accuracies, MIAs, distances), the run's cost
# (its own time plus every artefact it consumed), and the paper-neutral run extras a study can
# ask for with `extras:` (relearn time and AIN, energy scores).


rule predict:
    input:
        ckpt=checkpoint_of,
        data=rules.prepare_dataset.output.data,
    output:
        outputs=os.path.join(RUN_DIR, "outputs.npz"),
    params:
        device=DEVICE,
        threads=THREADS,
    log:
        os.path.join(R, "logs", "predict", "{dataset}", "{model}", "{training}", "s{seed}", "{scenario}", "{method}.log"),
    threads: THREADS
    resources:
        gpu=GPU,
    conda:
        ENV
    script:
        "../scripts/predict.py"


rule evaluate:
    input:
        outputs=os.path.join(RUN_DIR, "outputs.npz"),
        retrain_outputs=lambda w: run_path(os.path.join(RUN_DIR, "outputs.npz"), w, method=retrain_method(w)),
        data=rules.prepare_dataset.output.data,
        split=rules.make_split.output.split,
        request=rules.make_forget_request.output.request,
        ckpt=checkpoint_of,
        original=rules.train_original.output.ckpt,
        retrain=lambda w: retrain_ckpt(w),
        info=lambda w: [run_path(os.path.join(RUN_DIR, "unlearn.json"), w)] if method_of(w.method).kind != "reference" else [],
    output:
        metrics=os.path.join(RUN_DIR, "metrics.json"),
        mia=os.path.join(RUN_DIR, "mia.npz"),
    params:
        access=lambda w: method_of(w.method).access().label,
    log:
        os.path.join(R, "logs", "evaluate", "{dataset}", "{model}", "{training}", "s{seed}", "{scenario}", "{method}.log"),
    conda:
        ENV
    script:
        "../scripts/evaluate.py"


rule run_cost:
    # Timing sidecar of a run: its own step + every artefact it consumed, and retrain time / that.
    input:
        own=unlearn_time,
        artefacts=artefact_times,
        retrain=lambda w: timing_files(retrain_ckpt(w)),
    output:
        cost=os.path.join(RUN_DIR, "cost.json"),
    log:
        os.path.join(R, "logs", "run_cost", "{dataset}", "{model}", "{training}", "s{seed}", "{scenario}", "{method}.log"),
    localrule: True
    conda:
        ENV
    script:
        "../scripts/run_cost.py"


RUN_EXTRAS["relearn"] = os.path.join(RUN_DIR, "relearn.json")
RUN_EXTRAS["energy"] = os.path.join(RUN_DIR, "energy.json")


rule relearn_measure:
    # Relearn time of one run's model (both definitions), always on a copy of the model.
    input:
        ckpt=checkpoint_of,
        original=rules.train_original.output.ckpt,
        data=rules.prepare_dataset.output.data,
        split=rules.make_split.output.split,
        request=rules.make_forget_request.output.request,
    output:
        raw=os.path.join(RUN_DIR, "relearn_raw.json"),
    params:
        settings=config.get("relearn", {}),
        device=DEVICE,
        threads=THREADS,
    log:
        os.path.join(R, "logs", "relearn_measure", "{dataset}", "{model}", "{training}", "s{seed}", "{scenario}", "{method}.log"),
    threads: THREADS
    resources:
        gpu=GPU,
    conda:
        ENV
    script:
        "../scripts/relearn_measure.py"


rule relearn_metrics:
    # Relearn time and the Anamnesis Index against the retrained model of the same seed.
    input:
        own=os.path.join(RUN_DIR, "relearn_raw.json"),
        retrain=lambda w: run_path(os.path.join(RUN_DIR, "relearn_raw.json"), w, method=retrain_method(w)),
    output:
        json=RUN_EXTRAS["relearn"],
    log:
        os.path.join(R, "logs", "relearn_metrics", "{dataset}", "{model}", "{training}", "s{seed}", "{scenario}", "{method}.log"),
    localrule: True
    conda:
        ENV
    script:
        "../scripts/relearn_metrics.py"


rule energy_scores:
    # Mean OOD score -HFE (free energy, T=1) on forget / retain / retained-class test samples.
    input:
        outputs=os.path.join(RUN_DIR, "outputs.npz"),
        data=rules.prepare_dataset.output.data,
        split=rules.make_split.output.split,
        request=rules.make_forget_request.output.request,
    output:
        json=RUN_EXTRAS["energy"],
    log:
        os.path.join(R, "logs", "energy_scores", "{dataset}", "{model}", "{training}", "s{seed}", "{scenario}", "{method}.log"),
    conda:
        ENV
    script:
        "../scripts/energy_scores.py"
