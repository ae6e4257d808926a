# Artefact "attacker": DAU's membership-inference attacker (paper 003, Sec. 3.1 and 4.2), pretrained
# against the original model (dense or pruned variant) to tell its outputs on the forget set
# (members) from those on the validation set (non-members). One file per original model, forget
# request and attacker settings; changing a game setting (lr, alpha, beta, iterations) reuses it.

ATTACKER = os.path.join(ART_DIR, "{scenario}", "dau_attacker_{key}.safetensors")
ARTEFACTS["attacker"] = lambda w, m: run_path(ATTACKER, w, key=artefact_key(m, "attacker"))


rule dau_attacker:
    input:
        original=rules.train_original.output.ckpt,
        forget=os.path.join(DATA_DIR, "access", "{scenario}", "forget.npz"),
        val=os.path.join(DATA_DIR, "access", "{scenario}", "val.npz"),
    output:
        attacker=ATTACKER,
        info=os.path.join(ART_DIR, "{scenario}", "dau_attacker_{key}.json"),
        time=os.path.join(ART_DIR, "{scenario}", "dau_attacker_{key}.time.json"),
    params:
        settings=settings_of("attacker"),
        device=DEVICE,
        threads=THREADS,
    log:
        os.path.join(R, "logs", "dau_attacker", "{dataset}", "{model}", "{training}", "s{seed}", "{scenario}", "{key}.log"),
    threads: THREADS
    resources:
        gpu=GPU,
    conda:
        ENV
    script:
        "../../scripts/dau_attacker.py"
