# Stage 4: model outputs on every sample and metrics (accuracies, MIAs, distances), and the
# paper-neutral run extras a study can ask for with `extras:` (relearn time and AIN, energy scores,
# the MuGAN thesis' MIA).
# A run's cost (its own time plus every artefact it consumed) is summed by report_study from the
# timing sidecars.

from unlearnbench.metrics.cost import relearn_gold_key, relearn_settings


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
RUN_EXTRAS["mia_thesis"] = os.path.join(RUN_DIR, "mia_thesis.json")

# Relearn settings (metrics/cost.py relearn_settings): the `relearn` block (extra `relearn`, files
# relearn_raw.json / relearn.json) and each named variant over it (`relearn_variants.<v>`, extra
# `relearn.<v>`, files relearn.<v>_raw.json / relearn.<v>.json): the {rvariant} wildcard is "" or
# ".<v>". Settings whose `gold` is {epochs, retain_fraction} divide by a reference-style gold model's
# relearn time (rules train_relearn_gold, relearn_gold) instead of the retrained model's.
RELEARN_VARIANTS = config.get("relearn_variants", {})
RUN_EXTRAS.update({f"relearn.{v}": os.path.join(RUN_DIR, f"relearn.{v}.json") for v in RELEARN_VARIANTS})
RVARIANT = rf"(\.({names_regex(RELEARN_VARIANTS)}))?"
RELEARN_GOLDS = {relearn_gold_key(s): s["gold"] for s in [relearn_settings(config, rv) for rv in ["", *(f".{v}" for v in RELEARN_VARIANTS)]]
                 if relearn_gold_key(s)}  # key -> {epochs, retain_fraction}
RELEARN_GOLD = os.path.join(MODEL_DIR, "relearn_gold-{key}_{scenario}")


rule relearn_measure:
    # Relearn time of one run's model (both definitions), always on a copy of the model.
    input:
        ckpt=checkpoint_of,
        original=rules.train_original.output.ckpt,
        data=rules.prepare_dataset.output.data,
        split=rules.make_split.output.split,
        request=rules.make_forget_request.output.request,
    output:
        raw=os.path.join(RUN_DIR, "relearn{rvariant}_raw.json"),
    wildcard_constraints:
        rvariant=RVARIANT,
    params:
        settings=lambda w: relearn_settings(config, w.rvariant),
        device=DEVICE,
        threads=THREADS,
    log:
        os.path.join(R, "logs", "relearn_measure", "{dataset}", "{model}", "{training}", "s{seed}", "{scenario}", "{method}{rvariant}.log"),
    threads: THREADS
    resources:
        gpu=GPU,
    conda:
        ENV
    script:
        "../scripts/relearn_measure.py"


rule relearn_metrics:
    # Relearn time and the Anamnesis Index against the gold model of the same seed (the retrained model
    # unless the settings name a reference-style gold).
    input:
        own=os.path.join(RUN_DIR, "relearn{rvariant}_raw.json"),
        retrain=lambda w: (run_path(os.path.join(RUN_DIR, "relearn{rvariant}_raw.json"), w, method=retrain_method(w))
                           if relearn_gold_key(relearn_settings(config, w.rvariant)) is None else
                           run_path(os.path.join(RELEARN_GOLD, "relearn{rvariant}_raw.json"), w,
                                    key=relearn_gold_key(relearn_settings(config, w.rvariant)))),
    output:
        json=os.path.join(RUN_DIR, "relearn{rvariant}.json"),
    wildcard_constraints:
        rvariant=RVARIANT,
    log:
        os.path.join(R, "logs", "relearn_metrics", "{dataset}", "{model}", "{training}", "s{seed}", "{scenario}", "{method}{rvariant}.log"),
    localrule: True
    conda:
        ENV
    script:
        "../scripts/relearn_metrics.py"


rule train_relearn_gold:
    # AIN's reference-style gold model (relearn setting gold: {epochs, retain_fraction}): the original's
    # recipe for `epochs` epochs, from scratch, on a seeded random fraction of the retain set (and, for a
    # sparse original, its pruning mask). Only AIN reads it; no table row is made from it.
    input:
        unpack(pruning_mask),
        data=rules.prepare_dataset.output.data,
        split=rules.make_split.output.split,
        request=rules.make_forget_request.output.request,
    output:
        ckpt=f"{RELEARN_GOLD}.safetensors",
        log=f"{RELEARN_GOLD}.log.csv",
        info=f"{RELEARN_GOLD}.json",
        time=f"{RELEARN_GOLD}.time.json",
        outputs=f"{RELEARN_GOLD}.outputs.npz",
    params:
        dataset=lambda w: config["datasets"][w.dataset],
        model=lambda w: model_spec(w.model),
        recipe=lambda w: config["training"][w.training],
        gold=lambda w: RELEARN_GOLDS[w.key],
        device=DEVICE,
        threads=THREADS,
    log:
        os.path.join(R, "logs", "train_relearn_gold", "{dataset}", "{model}", "{training}", "s{seed}", "relearn_gold-{key}_{scenario}.log"),
    threads: THREADS
    resources:
        gpu=GPU,
    conda:
        ENV
    script:
        "../scripts/train_relearn_gold.py"


use rule relearn_measure as relearn_gold with:
    # The reference-style gold model's relearn time, with the settings of {rvariant} (on a copy): the
    # same job as relearn_measure, on the gold checkpoint.
    input:
        ckpt=rules.train_relearn_gold.output.ckpt,
        original=rules.train_original.output.ckpt,
        data=rules.prepare_dataset.output.data,
        split=rules.make_split.output.split,
        request=rules.make_forget_request.output.request,
    output:
        raw=os.path.join(RELEARN_GOLD, "relearn{rvariant}_raw.json"),
    log:
        os.path.join(R, "logs", "relearn_gold", "{dataset}", "{model}", "{training}", "s{seed}", "relearn_gold-{key}_{scenario}{rvariant}.log"),


rule mia_thesis:
    # The MuGAN thesis' MIA as its code computes it (metrics/mia.py thesis_mia): one entropy attack fitted
    # on every retain sample vs every test sample; % of the forget set it calls member.
    input:
        outputs=outputs_of,
        data=rules.prepare_dataset.output.data,
        split=rules.make_split.output.split,
        request=rules.make_forget_request.output.request,
    output:
        json=RUN_EXTRAS["mia_thesis"],
    log:
        os.path.join(R, "logs", "mia_thesis", "{dataset}", "{model}", "{training}", "s{seed}", "{scenario}", "{method}.log"),
    localrule: True
    conda:
        ENV
    script:
        "../scripts/mia_thesis.py"


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
