# Artefact "inversion": UISPS's data-free replacement samples of one forgotten class (paper 004,
# Eqs 1-5), synthesised from the original model alone: the rule reads no data (zero-glance). One
# file per class, shared by every scenario that forgets the class; changing an unlearning setting
# (lr, alpha, relabelling...) reuses it.

INVERSION = os.path.join(ART_DIR, "inversion_{key}", "class{cls}.npz")
ARTEFACTS["inversion"] = lambda w, m: [run_path(INVERSION, w, key=artefact_key(m, "inversion"), cls=c)
                                       for c in scenario_classes(w["scenario"])]


rule make_inversion:
    input:
        original=rules.train_original.output.ckpt,
    output:
        samples=INVERSION,
        info=os.path.join(ART_DIR, "inversion_{key}", "class{cls}.json"),
        time=os.path.join(ART_DIR, "inversion_{key}", "class{cls}.time.json"),
        grid=os.path.join(ART_DIR, "inversion_{key}", "class{cls}.png"),
    wildcard_constraints:
        cls=r"\d+",
    params:
        settings=settings_of("inversion"),
        device=DEVICE,
        threads=THREADS,
    log:
        os.path.join(R, "logs", "make_inversion", "{dataset}", "{model}", "{training}", "s{seed}", "{key}", "class{cls}.log"),
    threads: THREADS
    resources:
        gpu=GPU,
    conda:
        ENV
    script:
        "../../scripts/make_inversion.py"
