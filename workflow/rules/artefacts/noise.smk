# Artefact "noise": UNSIR's error-maximising noise, one file per forget class, learned against the
# original model alone (no data). Changing impair/repair settings reuses it.

NOISE = os.path.join(ART_DIR, "noise_{key}", "class{cls}.safetensors")
ARTEFACTS["noise"] = lambda w, m: [run_path(NOISE, w, key=artefact_key(m, "noise"), cls=c)
                                   for c in scenario_classes(w["scenario"])]


rule make_noise:
    input:
        original=rules.train_original.output.ckpt,
    output:
        noise=NOISE,
        info=os.path.join(ART_DIR, "noise_{key}", "class{cls}.json"),
        time=os.path.join(ART_DIR, "noise_{key}", "class{cls}.time.json"),
    wildcard_constraints:
        cls=r"\d+",
    params:
        settings=settings_of("noise"),
        device=DEVICE,
        threads=THREADS,
    log:
        os.path.join(R, "logs", "make_noise", "{dataset}", "{model}", "{training}", "s{seed}", "{key}", "class{cls}.log"),
    threads: THREADS
    resources:
        gpu=GPU,
    conda:
        ENV
    script:
        "../../scripts/make_noise.py"
