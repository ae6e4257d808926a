# Stage 4: model outputs on every sample, then metrics (accuracies, MIAs, distances).


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
        os.path.join(R, "logs/predict/{dataset}/{model}/{training}/s{seed}/{scenario}/{method}.log"),
    threads: THREADS
    resources:
        mem_mb=4000,
        runtime=30,
        gpu=GPU,
    conda:
        "../../envs/unlearnbench.yaml"
    script:
        "../scripts/predict.py"


rule evaluate:
    input:
        outputs=os.path.join(RUN_DIR, "outputs.npz"),
        retrain_outputs=lambda w: expand(os.path.join(RUN_DIR, "outputs.npz"), **{**w, "method": retrain_method(w)})[0],
        data=rules.prepare_dataset.output.data,
        split=rules.make_split.output.split,
        request=rules.make_forget_request.output.request,
        ckpt=checkpoint_of,
        original=rules.train_original.output.ckpt,
        retrain=rules.train_retrain.output.ckpt,
        time=time_info_of,
    output:
        metrics=os.path.join(RUN_DIR, "metrics.json"),
        mia=os.path.join(RUN_DIR, "mia.npz"),
    log:
        os.path.join(R, "logs/evaluate/{dataset}/{model}/{training}/s{seed}/{scenario}/{method}.log"),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/unlearnbench.yaml"
    script:
        "../scripts/evaluate.py"
