# Stage 3: unlearning. One job per (dataset, model, training, seed, scenario, method instance).
# Only the method's own block of config.yaml is a param, so changing it reruns only its jobs.


rule unlearn:
    input:
        unpack(method_artefacts),
        data=rules.prepare_dataset.output.data,
        split=rules.make_split.output.split,
        request=rules.make_forget_request.output.request,
        original=rules.train_original.output.ckpt,
    output:
        ckpt=os.path.join(RUN_DIR, "model.safetensors"),
        info=os.path.join(RUN_DIR, "unlearn.json"),
    params:
        method=lambda w: config["methods"][w.method],
        device=DEVICE,
        threads=THREADS,
    log:
        os.path.join(R, "logs/unlearn/{dataset}/{model}/{training}/s{seed}/{scenario}/{method}.log"),
    threads: THREADS
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=GPU,
    conda:
        "../../envs/unlearnbench.yaml"
    script:
        "../scripts/unlearn.py"
