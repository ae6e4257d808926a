# Artefact "mask": CLUE's first saliency mask (Eq. 6), from the original model and the forget set.

MASK = os.path.join(ART_DIR, "{scenario}", "mask_{key}.safetensors")
ARTEFACTS["mask"] = lambda w, m: run_path(MASK, w, key=artefact_key(m, "mask"))


rule make_mask:
    input:
        original=rules.train_original.output.ckpt,
        forget=os.path.join(DATA_DIR, "access", "{scenario}", "forget.npz"),
    output:
        mask=MASK,
        info=os.path.join(ART_DIR, "{scenario}", "mask_{key}.json"),
        time=os.path.join(ART_DIR, "{scenario}", "mask_{key}.time.json"),
    params:
        settings=settings_of("mask"),
        device=DEVICE,
        threads=THREADS,
    log:
        os.path.join(R, "logs", "make_mask", "{dataset}", "{model}", "{training}", "s{seed}", "{scenario}", "{key}.log"),
    threads: THREADS
    resources:
        gpu=GPU,
    conda:
        ENV
    script:
        "../../scripts/make_mask.py"
