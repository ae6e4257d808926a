# Stage 3: unlearning, one job per (dataset, model, training, seed, scenario, method instance).
# Inputs are exactly what the method declares: the original model, the request card (type and
# classes, no indices), its data views and its artefacts. Only the method's own config block (with
# the locked values of a tuned instance: tuning.py) is a param, so changing it reruns only its jobs.


rule unlearn:
    input:
        unpack(method_views),
        unpack(method_artefacts),
        unpack(pruning_mask),
        original=rules.train_original.output.ckpt,
        card=rules.make_forget_request.output.card,
    output:
        ckpt=os.path.join(RUN_DIR, "model.safetensors"),
        info=os.path.join(RUN_DIR, "unlearn.json"),
        time=os.path.join(RUN_DIR, "model.time.json"),
    params:
        method=lambda w: run_spec(w)[0],
        tuned=lambda w: run_spec(w)[1],
        model=lambda w: model_spec(w.model),  # the original must hold this model (checked before unlearning)
        protected=[R, config["data_root"]],
        device=DEVICE,
        threads=THREADS,
    log:
        os.path.join(R, "logs", "unlearn", "{dataset}", "{model}", "{training}", "s{seed}", "{scenario}", "{method}.log"),
    threads: THREADS
    resources:
        gpu=GPU,
    conda:
        ENV
    script:
        "../scripts/unlearn.py"


use rule unlearn as time_unlearn with:
    # Repeated timing of a run's unlearning step (studies with `timing_repeats: k`): the step k times
    # from the same state; the median is the run's step time. Only a timing sidecar is written.
    output:
        time=os.path.join(RUN_DIR, "timing_r{repeats}.time.json"),
    wildcard_constraints:
        repeats=r"[1-9]\d*",
    log:
        os.path.join(R, "logs", "time_unlearn", "{dataset}", "{model}", "{training}", "s{seed}", "{scenario}", "{method}_r{repeats}.log"),
