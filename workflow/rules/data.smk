# Stage 1: datasets, splits and forget requests.


rule prepare_dataset:
    output:
        data=os.path.join(R, "data/{dataset}/data.npz"),
    params:
        spec=lambda w: config["datasets"][w.dataset],
        data_root=config["data_root"],
        allow_download=config["allow_download"],
    log:
        os.path.join(R, "logs/prepare_dataset/{dataset}.log"),
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
        split=os.path.join(R, "data/{dataset}/split.json"),
    params:
        spec=lambda w: config["datasets"][w.dataset],
    log:
        os.path.join(R, "logs/make_split/{dataset}.log"),
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
        request=os.path.join(R, "data/{dataset}/forget/{scenario}.json"),
    params:
        scenario=lambda w: config["scenarios"][w.scenario],
    log:
        os.path.join(R, "logs/make_forget_request/{dataset}/{scenario}.log"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/unlearnbench.yaml"
    script:
        "../scripts/make_forget_request.py"
