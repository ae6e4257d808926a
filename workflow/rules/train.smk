# Stage 2: the original model and the retrained gold model (one per forget request and seed).


rule train_original:
    input:
        data=rules.prepare_dataset.output.data,
        split=rules.make_split.output.split,
    output:
        ckpt=os.path.join(MODEL_DIR, "original.safetensors"),
        log=os.path.join(MODEL_DIR, "original.log.csv"),
        info=os.path.join(MODEL_DIR, "original.json"),
    params:
        dataset=lambda w: config["datasets"][w.dataset],
        model=lambda w: config["models"][w.model],
        recipe=lambda w: config["training"][w.training],
        device=DEVICE,
        threads=THREADS,
    log:
        os.path.join(R, "logs/train_original/{dataset}/{model}/{training}/s{seed}.log"),
    threads: THREADS
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=GPU,
    conda:
        "../../envs/unlearnbench.yaml"
    script:
        "../scripts/train.py"


rule train_retrain:
    input:
        data=rules.prepare_dataset.output.data,
        split=rules.make_split.output.split,
        request=rules.make_forget_request.output.request,
    output:
        ckpt=os.path.join(MODEL_DIR, "retrain_{scenario}.safetensors"),
        log=os.path.join(MODEL_DIR, "retrain_{scenario}.log.csv"),
        info=os.path.join(MODEL_DIR, "retrain_{scenario}.json"),
    params:
        dataset=lambda w: config["datasets"][w.dataset],
        model=lambda w: config["models"][w.model],
        recipe=lambda w: config["training"][w.training],
        device=DEVICE,
        threads=THREADS,
    log:
        os.path.join(R, "logs/train_retrain/{dataset}/{model}/{training}/s{seed}/{scenario}.log"),
    threads: THREADS
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=GPU,
    conda:
        "../../envs/unlearnbench.yaml"
    script:
        "../scripts/train.py"
