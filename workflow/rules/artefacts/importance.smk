# Artefact "importance": UISPS's parameter importance (paper 004, Eqs 8-10): the diagonal Fisher of
# the original model on the synthetic forget samples (rule make_inversion's files of the scenario's
# classes) and on a small seeded retain portion D'_r (a data view), stored raw so that alpha and the
# normalisation scope are chosen at unlearning time (alpha sweeps reuse one file). The forget set is
# never read.

from unlearnbench.methods.uisps import importance_view
from unlearnbench.parts.inversion import INVERSION_KEYS as DEEPINVERSION_KEYS  # (rule files share one namespace)

IMPORTANCE = os.path.join(ART_DIR, "{scenario}", "importance_{key}.safetensors")
ARTEFACTS["importance"] = lambda w, m: run_path(IMPORTANCE, w, key=artefact_key(m, "importance"))


rule make_importance:
    input:
        original=rules.train_original.output.ckpt,
        inversion=lambda w: [
            run_path(rules.make_inversion.output.samples, w, key=settings_key(artefact_settings("importance")[w.key], DEEPINVERSION_KEYS),
                     cls=c)
            for c in scenario_classes(w.scenario)
        ],
        retain=lambda w: run_path(
            os.path.join(DATA_DIR, "access", "{scenario}", "{view}.npz"), w,
            view=importance_view(artefact_settings("importance")[w.key]["fisher_retain_fraction"], int(w.seed))),
    output:
        importance=IMPORTANCE,
        info=os.path.join(ART_DIR, "{scenario}", "importance_{key}.json"),
        time=os.path.join(ART_DIR, "{scenario}", "importance_{key}.time.json"),
    params:
        settings=settings_of("importance"),
        device=DEVICE,
        threads=THREADS,
    log:
        os.path.join(R, "logs", "make_importance", "{dataset}", "{model}", "{training}", "s{seed}", "{scenario}", "{key}.log"),
    threads: THREADS
    resources:
        gpu=GPU,
    conda:
        ENV
    script:
        "../../scripts/make_importance.py"
