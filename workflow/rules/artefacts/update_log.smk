# Artefact "update_log": Amnesiac unlearning's training-time log (Graves et al.; paper 002, Table 1
# "Amn Unlearning": needs metadata). The data owner records, while the original trains, the
# parameter update of every batch that holds a watched class; here the rule replays the original's
# training (rule train_original: same seed, initialisation, batch order and recipe) with the
# recorder as training.train's on_batch hook, and fails with one line unless the replayed final
# weights equal the original checkpoint bit for bit (e.g. on a non-deterministic GPU). The watched
# classes are the method's log_classes, or the request's forget classes when it is empty; a log is
# shared by every request on the same classes. Dense originals only.

UPDATE_LOG = os.path.join(ART_DIR, "update_log_{key}", "classes{classes}.safetensors")
ARTEFACTS["update_log"] = lambda w, m: run_path(
    UPDATE_LOG, w, key=artefact_key(m, "update_log"),
    classes="-".join(str(c) for c in sorted(set(m.hp["log_classes"] or scenario_classes(w["scenario"])))))


rule record_update_log:
    input:
        data=rules.prepare_dataset.output.data,
        split=rules.make_split.output.split,
        original=rules.train_original.output.ckpt,
    output:
        log=UPDATE_LOG,
        info=os.path.join(ART_DIR, "update_log_{key}", "classes{classes}.json"),
        time=os.path.join(ART_DIR, "update_log_{key}", "classes{classes}.time.json"),
    wildcard_constraints:
        classes=r"\d+(-\d+)*",
        model=names_regex(DENSE_MODELS),
    params:
        settings=settings_of("update_log"),
        model=lambda w: config["models"][w.model],
        recipe=lambda w: config["training"][w.training],
        device=DEVICE,
        threads=THREADS,
    log:
        os.path.join(R, "logs", "record_update_log", "{dataset}", "{model}", "{training}", "s{seed}", "{key}", "classes{classes}.log"),
    threads: THREADS
    resources:
        gpu=GPU,
    conda:
        ENV
    script:
        "../../scripts/record_update_log.py"
