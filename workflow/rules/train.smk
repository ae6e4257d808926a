# Stage 2: the original model, its sparse variants (one-shot magnitude pruning), and the retrained
# gold models (one per forget request, seed and replica; replica r >= 1 is an independent retrain
# that shows the gold standard's own noise; a sparse original's gold model keeps its mask).


rule train_original:
    input:
        data=rules.prepare_dataset.output.data,
        split=rules.make_split.output.split,
    output:
        ckpt=os.path.join(MODEL_DIR, "original.safetensors"),
        log=os.path.join(MODEL_DIR, "original.log.csv"),
        info=os.path.join(MODEL_DIR, "original.json"),
        time=os.path.join(MODEL_DIR, "original.time.json"),
        outputs=os.path.join(MODEL_DIR, "original.outputs.npz"),
    wildcard_constraints:
        model=names_regex(DENSE_MODELS),
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


rule prune_original:
    # OMP: global L1 magnitude pruning of the conv weights of the base model's original, rewind the
    # survivors to their state after `rewind_epoch` epochs, retrain with the mask enforced.
    input:
        data=rules.prepare_dataset.output.data,
        split=rules.make_split.output.split,
        original=lambda w: run_path(os.path.join(MODEL_DIR, "original.safetensors"), w,
                                    model=config["models"][w.model]["base"]),
    output:
        ckpt=os.path.join(MODEL_DIR, "original.safetensors"),
        mask=os.path.join(MODEL_DIR, "original.mask.safetensors"),
        info=os.path.join(MODEL_DIR, "original.json"),
        time=os.path.join(MODEL_DIR, "original.time.json"),
        outputs=os.path.join(MODEL_DIR, "original.outputs.npz"),
    wildcard_constraints:
        model=names_regex(PRUNED_MODELS),
    params:
        dataset=lambda w: config["datasets"][w.dataset],
        model=lambda w: model_spec(w.model),
        recipe=lambda w: config["training"][w.training],
        prune=lambda w: config["models"][w.model]["prune"],
        device=DEVICE,
        threads=THREADS,
    log:
        os.path.join(R, "logs", "prune_original", "{dataset}", "{model}", "{training}", "s{seed}.log"),
    threads: THREADS
    resources:
        gpu=GPU,
    conda:
        ENV
    script:
        "../scripts/prune_original.py"


rule train_retrain:
    input:
        unpack(pruning_mask),
        data=rules.prepare_dataset.output.data,
        split=rules.make_split.output.split,
        request=rules.make_forget_request.output.request,
    output:
        ckpt=os.path.join(MODEL_DIR, "retrain{replica}_{scenario}.safetensors"),
        log=os.path.join(MODEL_DIR, "retrain{replica}_{scenario}.log.csv"),
        info=os.path.join(MODEL_DIR, "retrain{replica}_{scenario}.json"),
        time=os.path.join(MODEL_DIR, "retrain{replica}_{scenario}.time.json"),
        outputs=os.path.join(MODEL_DIR, "retrain{replica}_{scenario}.outputs.npz"),
    params:
        dataset=lambda w: config["datasets"][w.dataset],
        model=lambda w: model_spec(w.model),
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
