# Artefact "kegnet": zMuGAN's ensemble of KegNet-style inversion generators (paper 002, Sec. 3.1.2,
# Alg. 6), one file per member, each inverted from the original model alone: the rule's only input
# is the original checkpoint (no dataset, split or data view), which is what makes zMuGAN zero-shot
# in the DAG itself. The member count is not part of the key: a smaller ensemble reuses the first
# members. zMuGAN declares this kind so that the inversion time is part of its artefact cost.

KEGNET = os.path.join(ART_DIR, "kegnet_{key}", "member{member}.safetensors")
ARTEFACTS["kegnet"] = lambda w, m: [run_path(KEGNET, w, key=artefact_key(m, "kegnet"), member=i)
                                    for i in range(int(m.hp["inv_members"]))]


rule train_kegnet:
    input:
        original=rules.train_original.output.ckpt,
    output:
        generator=KEGNET,
        info=os.path.join(ART_DIR, "kegnet_{key}", "member{member}.json"),
        time=os.path.join(ART_DIR, "kegnet_{key}", "member{member}.time.json"),
    wildcard_constraints:
        member=r"\d+",
    params:
        settings=settings_of("kegnet"),
        device=DEVICE,
        threads=THREADS,
    log:
        os.path.join(R, "logs", "train_kegnet", "{dataset}", "{model}", "{training}", "s{seed}", "{key}", "member{member}.log"),
    threads: THREADS
    resources:
        gpu=GPU,
    conda:
        ENV
    script:
        "../../scripts/train_kegnet.py"
