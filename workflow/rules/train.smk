# Stage 2: the original model and the retrained gold models (one per forget request, seed and
# replica; replica r >= 1 is an independent retrain that shows the gold standard's own noise).


rule train_original:
    input:
        data=rules.prepare_dataset.output.data,
        split=rules.make_split.output.split,
    output:
        ckpt=os.path.join(MODEL_DIR, "original.safetensors"),
        log=os.path.join(MODEL_DIR, "original.log.csv"),
        info=os.path.join(MODEL_DIR, "original.json"),
        time=os.path.join(MODEL_DIR, "original.time.json"),
    params:
        dataset=lambda w: config["datasets"][w.dataset],
        model=lambda w: config["models"][w.model],
        recipe=lambda w: config["training"][w.training],
        device=DEVICE,
        threads=THREADS,
    log:
        os.path.join(R, "logs", "train_original", "{dataset}", "{model}", "{training}", "s{seed}.log"),
    threads: THREADS
    resources:
        gpu=GPU,
    conda:
        ENV
    script:
        "../scripts/train_original.py"


rule train_retrain:
    input:
        data=rules.prepare_dataset.output.data,
        split=rules.make_split.output.split,
        request=rules.make_forget_request.output.request,
    output:
        ckpt=os.path.join(MODEL_DIR, "retrain{replica}_{scenario}.safetensors"),
        log=os.path.join(MODEL_DIR, "retrain{replica}_{scenario}.log.csv"),
        info=os.path.join(MODEL_DIR, "retrain{replica}_{scenario}.json"),
        time=os.path.join(MODEL_DIR, "retrain{replica}_{scenario}.time.json"),
    params:
        dataset=lambda w: config["datasets"][w.dataset],
        model=lambda w: config["models"][w.model],
        recipe=lambda w: config["training"][w.training],
        replica=lambda w: int(w.replica[2:]) if w.replica else 0,
        device=DEVICE,
        threads=THREADS,
    log:
        os.path.join(R, "logs", "train_retrain", "{dataset}", "{model}", "{training}", "s{seed}", "retrain{replica}_{scenario}.log"),
    threads: THREADS
    resources:
        gpu=GPU,
    conda:
        ENV
    script:
        "../scripts/train_retrain.py"
