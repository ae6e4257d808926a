# Stage 4: model outputs on every sample and metrics (accuracies, MIAs, distances), and the
# paper-neutral run extras a study can ask for with `extras:` (relearn time and AIN, energy scores).
# A run's cost (its own time plus every artefact it consumed) is summed by report_study from the
# timing sidecars.


rule evaluate:
    # An unlearned run: its logits on every sample (outputs.npz), then its metrics.
    input:
        ckpt=checkpoint_of,
        retrain_outputs=lambda w: outputs_of({**w, "method": retrain_method(w)}),
        data=rules.prepare_dataset.output.data,
        split=rules.make_split.output.split,
        request=rules.make_forget_request.output.request,
        original=rules.train_original.output.ckpt,
        retrain=lambda w: retrain_ckpt(w),
        info=os.path.join(RUN_DIR, "unlearn.json"),
    output:
        outputs=os.path.join(RUN_DIR, "outputs.npz"),
        metrics=os.path.join(RUN_DIR, "metrics.json"),
        mia=os.path.join(RUN_DIR, "mia.npz"),
    wildcard_constraints:
        method=names_regex(METHOD_INSTANCES),
    params:
        access=lambda w: method_of(w.method).access().label,
        device=DEVICE,
        threads=THREADS,
    log:
        os.path.join(R, "logs", "evaluate", "{dataset}", "{model}", "{training}", "s{seed}", "{scenario}", "{method}.log"),
    threads: THREADS
    resources:
        gpu=GPU,
    conda:
        ENV
    script:
        "../scripts/evaluate.py"


rule evaluate_reference:
    # The original and retrained models: their logits were written by their training job.
    input:
        ckpt=checkpoint_of,
        outputs=outputs_of,
        retrain_outputs=lambda w: outputs_of({**w, "method": retrain_method(w)}),
        data=rules.prepare_dataset.output.data,
        split=rules.make_split.output.split,
        request=rules.make_forget_request.output.request,
        original=rules.train_original.output.ckpt,
        retrain=lambda w: retrain_ckpt(w),
    output:
        metrics=os.path.join(RUN_DIR, "metrics.json"),
        mia=os.path.join(RUN_DIR, "mia.npz"),
    wildcard_constraints:
        method=names_regex(REFERENCE_INSTANCES),
    params:
        access=lambda w: method_of(w.method).access().label,
    localrule: True
    log:
        os.path.join(R, "logs", "evaluate_reference", "{dataset}", "{model}", "{training}", "s{seed}", "{scenario}", "{method}.log"),
    conda:
        ENV
    script:
        "../scripts/evaluate_reference.py"


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
        outputs=outputs_of,
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


# LiRA (a per-example attack with shadow models; metrics/lira.py): K shadow models per
# (dataset, model, training), shared by every run of every study that asks for `extras: [lira]`.
LIRA_DIR = os.path.join(R, "shadow", "{dataset}", "{model}", "{training}", "k{k}-s{lseed}")
LIRA = {"shadows": 8, "seed": 0, "fpr": 0.01, "variance": "global", **config.get("lira", {})}
RUN_EXTRAS["lira"] = os.path.join(RUN_DIR, "lira.json")


rule lira_masks:
    input:
        data=rules.prepare_dataset.output.data,
        split=rules.make_split.output.split,
    output:
        masks=os.path.join(LIRA_DIR, "masks.npz"),
    params:
        settings=lambda w: {"shadows": int(w.k), "seed": int(w.lseed)},
    log:
        os.path.join(R, "logs", "lira_masks", "{dataset}", "{model}", "{training}", "k{k}-s{lseed}.log"),
    localrule: True
    conda:
        ENV
    script:
        "../scripts/lira_masks.py"


rule lira_shadow:
    input:
        data=rules.prepare_dataset.output.data,
        masks=os.path.join(LIRA_DIR, "masks.npz"),
    output:
        outputs=os.path.join(LIRA_DIR, "shadow{index}.outputs.npz"),
        time=os.path.join(LIRA_DIR, "shadow{index}.time.json"),
    wildcard_constraints:
        index=r"\d+",
    params:
        model=lambda w: model_spec(w.model),
        recipe=lambda w: config["training"][w.training],
        device=DEVICE,
        threads=THREADS,
    log:
        os.path.join(R, "logs", "lira_shadow", "{dataset}", "{model}", "{training}", "k{k}-s{lseed}", "{index}.log"),
    threads: THREADS
    resources:
        gpu=GPU,
    conda:
        ENV
    script:
        "../scripts/lira_shadow.py"


rule lira:
    input:
        outputs=outputs_of,
        shadows=lambda w: expand(os.path.join(LIRA_DIR, "shadow{index}.outputs.npz"), index=range(LIRA["shadows"]),
                                 k=LIRA["shadows"], lseed=LIRA["seed"], **{k: w[k] for k in ("dataset", "model", "training")}),
        masks=lambda w: expand(os.path.join(LIRA_DIR, "masks.npz"), k=LIRA["shadows"], lseed=LIRA["seed"],
                               **{k: w[k] for k in ("dataset", "model", "training")})[0],
        data=rules.prepare_dataset.output.data,
        split=rules.make_split.output.split,
        request=rules.make_forget_request.output.request,
    output:
        json=RUN_EXTRAS["lira"],
    params:
        settings=LIRA,
    log:
        os.path.join(R, "logs", "lira", "{dataset}", "{model}", "{training}", "s{seed}", "{scenario}", "{method}.log"),
    localrule: True
    conda:
        ENV
    script:
        "../scripts/lira.py"
