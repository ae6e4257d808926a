# Artefact "gan": MuGAN's per-class DCGANs (paper 002, Sec. 3.2), one file per class, trained by the
# data owner on that class's training images when the original model is trained: the rule reads the
# archive and its split (training-time data), never a data view of a forget request. The GANs depend
# on the data, the seed and their settings only, so every model trained on the same dataset shares
# them (results/artefacts/<dataset>/_gans/s<seed>/<key>/). MuGAN declares this kind so that the GANs'
# training time is part of its artefact cost; it reads the synthetic set made from them.

from unlearnbench.methods.mugan import dataset_classes

GAN = os.path.join(R, "artefacts", "{dataset}", "_gans", "s{seed}", "{key}", "class{cls}.safetensors")
ARTEFACTS["gan"] = lambda w, m: [run_path(GAN, w, key=artefact_key(m, "gan"), cls=c)
                                 for c in range(dataset_classes(config["datasets"][w["dataset"]]))]


rule train_gan:
    input:
        data=rules.prepare_dataset.output.data,
        split=rules.make_split.output.split,
    output:
        generator=GAN,
        info=os.path.join(R, "artefacts", "{dataset}", "_gans", "s{seed}", "{key}", "class{cls}.json"),
        time=os.path.join(R, "artefacts", "{dataset}", "_gans", "s{seed}", "{key}", "class{cls}.time.json"),
    wildcard_constraints:
        cls=r"\d+",
    params:
        settings=settings_of("gan"),
        device=DEVICE,
        threads=THREADS,
    log:
        os.path.join(R, "logs", "train_gan", "{dataset}", "s{seed}", "{key}", "class{cls}.log"),
    threads: THREADS
    resources:
        gpu=GPU,
    conda:
        ENV
    script:
        "../../scripts/train_gan.py"
