# CLUE (paper 000): saliency-mask artefact, per-run -HFE metrics, the paper's figures, and
# `clue_all` (every CLUE table and figure). Tables are ordinary studies in workflow/studies/clue.yaml.

import hashlib as _hashlib
import json as _json

from unlearnbench.saliency import MASK_KEYS as _CLUE_MASK_KEYS


def _clue_mask_settings(spec):
    m = create_method(spec)
    return {k: m.hp[k] for k in _CLUE_MASK_KEYS}


def _clue_mask_key(settings):
    return _hashlib.sha256(_json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]


# mask key -> settings, for every instance that uses a mask (the path holds only the key).
CLUE_MASKS = {}
for _name, _spec in config["methods"].items():
    if "mask" in create_method(_spec).needs:
        _s = _clue_mask_settings(_spec)
        CLUE_MASKS[_clue_mask_key(_s)] = _s

CLUE_MASK = os.path.join(R, "artefacts/{dataset}/{model}/{training}/s{seed}/{scenario}/clue_mask_{maskkey}.safetensors")


def _clue_mask_path(w, spec):
    return expand(CLUE_MASK, dataset=w.dataset, model=w.model, training=w.training, seed=w.seed,
                  scenario=w.scenario, maskkey=_clue_mask_key(_clue_mask_settings(spec)))[0]


ARTEFACTS["mask"] = _clue_mask_path
RUN_EXTRAS["clue_energy"] = os.path.join(RUN_DIR, "clue_energy.json")


rule clue_mask:
    # Depends only on the original model, the forget request and the mask settings (not on CLUE's lr).
    input:
        data=rules.prepare_dataset.output.data,
        request=rules.make_forget_request.output.request,
        original=rules.train_original.output.ckpt,
    output:
        mask=CLUE_MASK,
        info=os.path.join(R, "artefacts/{dataset}/{model}/{training}/s{seed}/{scenario}/clue_mask_{maskkey}.json"),
    wildcard_constraints:
        maskkey=r"[0-9a-f]{10}",
    params:
        settings=lambda w: CLUE_MASKS[w.maskkey],
        device=DEVICE,
        threads=THREADS,
    log:
        os.path.join(R, "logs/clue_mask/{dataset}/{model}/{training}/s{seed}/{scenario}/{maskkey}.log"),
    threads: THREADS
    resources:
        mem_mb=4000,
        runtime=30,
        gpu=GPU,
    conda:
        "../../../envs/unlearnbench.yaml"
    script:
        "../../scripts/clue_stage.py"


rule clue_energy:
    # Mean OOD score -HFE (Eq. 1, T=1) on forget / retain / retained-class test samples of one run.
    input:
        outputs=os.path.join(RUN_DIR, "outputs.npz"),
        data=rules.prepare_dataset.output.data,
        split=rules.make_split.output.split,
        request=rules.make_forget_request.output.request,
    output:
        json=RUN_EXTRAS["clue_energy"],
    log:
        os.path.join(R, "logs/clue_energy/{dataset}/{model}/{training}/s{seed}/{scenario}/{method}.log"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../../envs/unlearnbench.yaml"
    script:
        "../../scripts/clue_stage.py"


# Figure settings: config key clue_figures (defaults below; see README "CLUE").
CLUE_FIG = {"dataset": "digits", "model": "resnet20", "training": "digits", "seed": 0, "scenario": "clue_class2",
            "method": "clue", "before": "original", "tsne_samples": 1000,
            "fig5_tables": ["clue_table3", "clue_table1"], **config.get("clue_figures", {})}


class _ClueW(dict):
    """Wildcards-like mapping (attribute access + **) for checkpoint_of."""
    __getattr__ = dict.__getitem__


def _clue_fig_run(method):
    return {k: CLUE_FIG[k] for k in ("dataset", "model", "training", "seed", "scenario")} | {"method": method}


def _clue_fig_label():
    return f"{CLUE_FIG['dataset']}/{CLUE_FIG['model']}, {CLUE_FIG['method']}, seed {CLUE_FIG['seed']}"


rule clue_fig2:
    input:
        before=lambda w: checkpoint_of(_ClueW(_clue_fig_run(CLUE_FIG["before"]))),
        after=lambda w: checkpoint_of(_ClueW(_clue_fig_run(CLUE_FIG["method"]))),
        data=expand(rules.prepare_dataset.output.data, dataset=CLUE_FIG["dataset"])[0],
        request=expand(rules.make_forget_request.output.request, dataset=CLUE_FIG["dataset"], scenario=CLUE_FIG["scenario"])[0],
    output:
        png=os.path.join(R, "figures/clue_fig2.png"),
        npz=os.path.join(R, "figures/clue_fig2.npz"),
    params:
        max_samples=CLUE_FIG["tsne_samples"],
        seed=CLUE_FIG["seed"],
        label=_clue_fig_label(),
        device=DEVICE,
        threads=THREADS,
    log:
        os.path.join(R, "logs/clue_fig2.log"),
    threads: THREADS
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../../envs/unlearnbench.yaml"
    script:
        "../../scripts/clue_stage.py"


rule clue_fig4:
    input:
        before=expand(os.path.join(RUN_DIR, "outputs.npz"), **_clue_fig_run(CLUE_FIG["before"]))[0],
        after=expand(os.path.join(RUN_DIR, "outputs.npz"), **_clue_fig_run(CLUE_FIG["method"]))[0],
        data=expand(rules.prepare_dataset.output.data, dataset=CLUE_FIG["dataset"])[0],
        request=expand(rules.make_forget_request.output.request, dataset=CLUE_FIG["dataset"], scenario=CLUE_FIG["scenario"])[0],
    output:
        png=os.path.join(R, "figures/clue_fig4.png"),
        csv=os.path.join(R, "figures/clue_fig4.csv"),
    params:
        label=_clue_fig_label(),
    log:
        os.path.join(R, "logs/clue_fig4.log"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../../envs/unlearnbench.yaml"
    script:
        "../../scripts/clue_stage.py"


rule clue_fig5:
    input:
        tables=expand(os.path.join(R, "tables/{study}.csv"), study=CLUE_FIG["fig5_tables"]),
    output:
        png=os.path.join(R, "figures/clue_fig5.png"),
        csv=os.path.join(R, "figures/clue_fig5.csv"),
    log:
        os.path.join(R, "logs/clue_fig5.log"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../../envs/unlearnbench.yaml"
    script:
        "../../scripts/clue_stage.py"


rule clue_all:
    # Every CLUE table (studies named clue_table*) and the three figures.
    input:
        expand(os.path.join(R, "tables/{study}.csv"), study=[s for s in config["studies"] if s.startswith("clue_table")]),
        rules.clue_fig2.output.png,
        rules.clue_fig4.output.png,
        rules.clue_fig5.output.png,
