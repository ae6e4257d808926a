# Stage 1: datasets, splits and forget requests.


rule prepare_dataset:
    output:
        data=R + "/data/{dataset}/data.npz",
    params:
        spec=lambda w: config["datasets"][w.dataset],
        data_root=config["data_root"],
        allow_download=config["allow_download"],
    log:
        R + "/logs/prepare_dataset/{dataset}.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/unlearnbench.yaml"
    script:
        "../scripts/prepare_dataset.py"


rule make_split:
    input:
        data=rules.prepare_dataset.output.data,
    output:
        split=R + "/data/{dataset}/split.json",
    params:
        spec=lambda w: config["datasets"][w.dataset],
    log:
        R + "/logs/make_split/{dataset}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/unlearnbench.yaml"
    script:
        "../scripts/make_split.py"


rule make_forget_request:
    input:
        data=rules.prepare_dataset.output.data,
        split=rules.make_split.output.split,
    output:
        request=R + "/data/{dataset}/forget/{scenario}.json",
    params:
        scenario=lambda w: config["scenarios"][w.scenario],
    log:
        R + "/logs/make_forget_request/{dataset}/{scenario}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/unlearnbench.yaml"
    script:
        "../scripts/make_forget_request.py"
