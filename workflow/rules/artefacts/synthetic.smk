# Artefacts "synthetic_gan" (MuGAN) and "synthetic_inversion" (zMuGAN): the class-filtered synthetic
# datasets the two methods unlearn with (paper 002, Algs. 5 and 7), drawn from the generators of
# rules train_gan / train_kegnet and kept only where the original model's argmax is the generator's
# class. One .npz per (original model, settings), shared by every forget request and table; the
# accepted samples are drawn as a grid, one row per class, in results/figures/synthetic/ (the
# acceptance rate per class is in its title and in the info JSON).

from unlearnbench.methods.mugan import GAN_KEYS, dataset_classes
from unlearnbench.methods.zmugan import INVERSION_KEYS as KEGNET_KEYS  # (rule files share one namespace)

SYNTHETIC = os.path.join(ART_DIR, "synthetic_{kind}_{key}.npz")
SYNTHETIC_GRID = os.path.join(R, "figures", "synthetic", "{dataset}", "{model}", "{training}", "s{seed}", "{kind}_{key}.png")
ARTEFACTS["synthetic_gan"] = lambda w, m: run_path(SYNTHETIC, w, kind="gan", key=artefact_key(m, "synthetic_gan"))
ARTEFACTS["synthetic_inversion"] = lambda w, m: run_path(SYNTHETIC, w, kind="inversion",
                                                         key=artefact_key(m, "synthetic_inversion"))
SYNTHETIC_SETTINGS = lambda w: artefact_settings(f"synthetic_{w['kind']}")[w["key"]]


rule make_synthetic:
    input:
        original=rules.train_original.output.ckpt,
        generators=lambda w: (
            [run_path(rules.train_gan.output.generator, w, key=settings_key(SYNTHETIC_SETTINGS(w), GAN_KEYS), cls=c)
             for c in range(dataset_classes(config["datasets"][w.dataset]))]
            if w.kind == "gan" else
            [run_path(rules.train_kegnet.output.generator, w, key=settings_key({k: v for k, v in SYNTHETIC_SETTINGS(w).items() if k in KEGNET_KEYS}),
                      member=i)
             for i in range(int(SYNTHETIC_SETTINGS(w)["inv_members"]))]
        ),
    output:
        synthetic=SYNTHETIC,
        info=os.path.join(ART_DIR, "synthetic_{kind}_{key}.json"),
        time=os.path.join(ART_DIR, "synthetic_{kind}_{key}.time.json"),
        grid=SYNTHETIC_GRID,
    wildcard_constraints:
        kind="gan|inversion",
    params:
        settings=SYNTHETIC_SETTINGS,
        device=DEVICE,
        threads=THREADS,
    log:
        os.path.join(R, "logs", "make_synthetic", "{dataset}", "{model}", "{training}", "s{seed}", "{kind}_{key}.log"),
    threads: THREADS
    resources:
        gpu=GPU,
    conda:
        ENV
    script:
        "../../scripts/make_synthetic.py"
