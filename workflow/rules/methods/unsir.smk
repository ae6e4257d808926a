# UNSIR (paper 001): error-maximising noise artefacts, relearn time / AIN, total unlearning time,
# and the paper's Figs 2-4. The noise depends only on the original model (dataset, model,
# training, seed), the class and the noise hyperparameters (NOISE_TAG), never on impair/repair
# settings, so changing e.g. repair_lr reuses the noise.

from unlearnbench.methods.unsir import noise_settings, noise_tag

NOISE_DIR = os.path.join(R, "noise/{dataset}/{model}/{training}/s{seed}/{noise_tag}")

# noise tag -> noise hyperparameters, for every method instance that needs noise.
NOISE_SETTINGS = {}
for _name, _spec in config["methods"].items():
    _m = create_method(_spec)
    if "noise" in _m.needs:
        NOISE_SETTINGS[noise_tag(noise_settings(_m.hp))] = noise_settings(_m.hp)


def _noise_manifest(w, spec):
    sc = config["scenarios"][w.scenario]
    if sc["type"] != "class":
        raise WorkflowError(f"unsir noise needs a class scenario, got {w.scenario!r} ({sc['type']})")
    classes = "-".join(str(c) for c in sorted(set(sc["classes"])))
    tag = noise_tag(noise_settings(create_method(spec).hp))
    return expand(os.path.join(NOISE_DIR, "set_{classes}.json"), **{k: w[k] for k in ("dataset", "model", "training", "seed")},
                  noise_tag=tag, classes=classes)[0]


ARTEFACTS["noise"] = _noise_manifest


rule unsir_noise:
    input:
        original=rules.train_original.output.ckpt,
    output:
        noise=os.path.join(NOISE_DIR, "class{cls}.safetensors"),
        info=os.path.join(NOISE_DIR, "class{cls}.json"),
    wildcard_constraints:
        cls=r"\d+",
        noise_tag=r"[\w.-]+",
    params:
        settings=lambda w: NOISE_SETTINGS[w.noise_tag],
        device=DEVICE,
        threads=THREADS,
    log:
        os.path.join(R, "logs/unsir_noise/{dataset}/{model}/{training}/s{seed}/{noise_tag}/class{cls}.log"),
    threads: THREADS
    resources:
        mem_mb=4000,
        runtime=30,
        gpu=GPU,
    conda:
        "../../../envs/unlearnbench.yaml"
    script:
        "../../scripts/unsir_noise.py"


rule unsir_noise_set:
    localrule: True
    input:
        lambda w: expand(os.path.join(NOISE_DIR, "class{cls}.safetensors"), **w, cls=w.classes.split("-")),
    output:
        manifest=os.path.join(NOISE_DIR, "set_{classes}.json"),
    wildcard_constraints:
        classes=r"\d+(-\d+)*",
        noise_tag=r"[\w.-]+",
    params:
        classes=lambda w: w.classes.split("-"),
    log:
        os.path.join(R, "logs/unsir_noise_set/{dataset}/{model}/{training}/s{seed}/{noise_tag}/set_{classes}.log"),
    conda:
        "../../../envs/unlearnbench.yaml"
    script:
        "../../scripts/unsir_noise_set.py"


# --------------------------------------------------------------------------- relearn time and AIN
RUN_EXTRAS["relearn"] = os.path.join(RUN_DIR, "relearn.json")
RUN_EXTRAS["time_total"] = os.path.join(RUN_DIR, "time_total.json")


rule relearn_measure:
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
        os.path.join(R, "logs/relearn/{dataset}/{model}/{training}/s{seed}/{scenario}/{method}.log"),
    threads: THREADS
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=GPU,
    conda:
        "../../../envs/unlearnbench.yaml"
    script:
        "../../scripts/relearn.py"


rule relearn_metrics:
    localrule: True
    input:
        own=os.path.join(RUN_DIR, "relearn_raw.json"),
        retrain=lambda w: expand(os.path.join(RUN_DIR, "relearn_raw.json"), **{**w, "method": retrain_method(w)})[0],
    output:
        json=os.path.join(RUN_DIR, "relearn.json"),
    log:
        os.path.join(R, "logs/relearn_metrics/{dataset}/{model}/{training}/s{seed}/{scenario}/{method}.log"),
    conda:
        "../../../envs/unlearnbench.yaml"
    script:
        "../../scripts/relearn_metrics.py"


rule time_total:
    localrule: True
    input:
        time=time_info_of,
        retrain=os.path.join(MODEL_DIR, "retrain_{scenario}.json"),
    output:
        json=os.path.join(RUN_DIR, "time_total.json"),
    log:
        os.path.join(R, "logs/time_total/{dataset}/{model}/{training}/s{seed}/{scenario}/{method}.log"),
    conda:
        "../../../envs/unlearnbench.yaml"
    script:
        "../../scripts/time_total.py"


# --------------------------------------------------------------------------- Figs 2-4
UNSIR_FIG_STUDY = "unsir_table1"


def _unsir_fig_runs():
    """The runs drawn in Figs 2-4: each setup of unsir_table1, its first two scenarios (1 and 2
    classes), its first seed; UNSIR and retrain."""
    from unlearnbench.config import study_setups

    s = config["studies"].get(UNSIR_FIG_STUDY)
    if s is None:
        raise WorkflowError(f"the UNSIR figures need study {UNSIR_FIG_STUDY!r}")
    meths = {config["methods"][m]["method"]: m for m in reversed(s["methods"])}
    runs = []
    for st in study_setups(s):
        for sc in s["scenarios"][:2]:
            for role in ("unsir", "retrain"):
                runs.append({**st, "scenario": sc, "method": meths[role], "seed": s["seeds"][0], "role": role})
    return runs


rule unsir_figures:
    input:
        metrics=lambda w: [expand(os.path.join(RUN_DIR, "metrics.json"), **{k: v for k, v in r.items() if k != "role"})[0]
                           for r in _unsir_fig_runs()],
    output:
        fig2=os.path.join(R, "figures/unsir_fig2.png"),
        fig3=os.path.join(R, "figures/unsir_fig3.png"),
        fig4=os.path.join(R, "figures/unsir_fig4.png"),
        data2=os.path.join(R, "tables/unsir_fig2.csv"),
        data4=os.path.join(R, "tables/unsir_fig4.csv"),
    params:
        runs=lambda w: _unsir_fig_runs(),
    log:
        os.path.join(R, "logs/unsir_figures.log"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../../envs/unlearnbench.yaml"
    script:
        "../../scripts/unsir_figures.py"


rule unsir_all:
    """Every UNSIR table and figure: snakemake --cores 2 unsir_all"""
    input:
        expand(os.path.join(R, "tables/{study}.csv"), study=[s for s in config["studies"] if s.startswith("unsir_table")]),
        rules.unsir_figures.output,
