# Stage 1: datasets, splits, forget requests, and the data views a method may read.


rule prepare_dataset:
    output:
        data=os.path.join(DATA_DIR, "data.npz"),
    params:
        spec=lambda w: config["datasets"][w.dataset],
        data_root=config["data_root"],
        allow_download=config["allow_download"],
    log:
        os.path.join(R, "logs", "prepare_dataset", "{dataset}.log"),
    conda:
        ENV
    script:
        "../scripts/prepare_dataset.py"


rule make_split:
    input:
        data=rules.prepare_dataset.output.data,
    output:
        split=os.path.join(DATA_DIR, "split.json"),
    params:
        spec=lambda w: config["datasets"][w.dataset],
    localrule: True
    log:
        os.path.join(R, "logs", "make_split", "{dataset}.log"),
    conda:
        ENV
    script:
        "../scripts/make_split.py"


rule make_forget_request:
    input:
        data=rules.prepare_dataset.output.data,
        split=rules.make_split.output.split,
    output:
        request=os.path.join(DATA_DIR, "forget", "{scenario}.json"),
        card=os.path.join(DATA_DIR, "forget", "{scenario}.card.json"),
    params:
        scenario=lambda w: config["scenarios"][w.scenario],
    localrule: True
    log:
        os.path.join(R, "logs", "make_forget_request", "{dataset}", "{scenario}.log"),
    conda:
        ENV
    script:
        "../scripts/make_forget_request.py"


rule data_view:
    # One set a method may read (forget, retain, val or a seeded retain subset) as its own file:
    # the unlearn job receives only the views its method declares, never the archive or the request.
    input:
        data=rules.prepare_dataset.output.data,
        split=rules.make_split.output.split,
        request=rules.make_forget_request.output.request,
    output:
        view=os.path.join(DATA_DIR, "access", "{scenario}", "{view}.npz"),
    localrule: True
    log:
        os.path.join(R, "logs", "data_view", "{dataset}", "{scenario}", "{view}.log"),
    conda:
        ENV
    script:
        "../scripts/data_view.py"
