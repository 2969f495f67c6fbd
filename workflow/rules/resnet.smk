# ResNet-18 with identifying class channels (Sec. 4.3, Fig. 4 and 5): one training job
# per (dataset, method, seed), resumable from checkpoints/ after a kill; aggregation per
# dataset; Fig. 4 from the aggregated runs, Fig. 5 from one example of the transform.

if config["resnet"]["datasets"]:
    FIGURES += [4, 5]


localrules:
    aggregate_resnet,
    class_channel_example,
    fig4,
    fig5,


rule train_resnet:
    input:
        raw="data/raw/{dataset}.npz",
    output:
        RESNET_RESULT,
    log:
        "logs/resnet/{dataset}/{method}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/resnet/{dataset}/{method}/seed{seed}.tsv"
    conda:
        "../../envs/labaug.yaml"
    threads: 1
    resources:
        mem_mb=16000,
        runtime=480,
        gpu=GPU,
    params:
        # Not an output: Snakemake would delete it when the job fails, and a rerun
        # must find it to resume.
        checkpoint="checkpoints/resnet/{dataset}/{method}/seed{seed}.pt",
    script:
        "../scripts/train_resnet.py"


rule aggregate_resnet:
    input:
        resnet_seed_files,
    output:
        "results/resnet/{dataset}.nc",
    log:
        "logs/aggregate/resnet_{dataset}.log",
    benchmark:
        "logs/benchmarks/aggregate/resnet_{dataset}.tsv"
    conda:
        "../../envs/labaug.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/aggregate.py"


rule class_channel_example:
    input:
        raw="data/raw/{dataset}.npz",
    output:
        "results/resnet/{dataset}_example.nc",
    log:
        "logs/resnet/{dataset}_example.log",
    benchmark:
        "logs/benchmarks/resnet/{dataset}_example.tsv"
    conda:
        "../../envs/labaug.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    script:
        "../scripts/class_channel_example.py"


rule fig4:
    input:
        unpack(resnet_results),
    output:
        report(
            "figures/fig4.pdf",
            caption="../report/fig4.rst",
            category="ResNet-18",
        ),
    log:
        "logs/figures/fig4.log",
    benchmark:
        "logs/benchmarks/figures/fig4.tsv"
    conda:
        "../../envs/labaug.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        figure="fig4",
    script:
        "../scripts/figure.py"


rule fig5:
    input:
        example=lambda wildcards: f"results/resnet/{config['resnet']['datasets'][0]}_example.nc",
    output:
        report(
            "figures/fig5.pdf",
            caption="../report/fig5.rst",
            category="ResNet-18",
        ),
    log:
        "logs/figures/fig5.log",
    benchmark:
        "logs/benchmarks/figures/fig5.tsv"
    conda:
        "../../envs/labaug.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        figure="fig5",
    script:
        "../scripts/figure.py"
