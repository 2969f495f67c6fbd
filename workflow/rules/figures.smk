# Figures: one job per figure, drawn only from aggregated result files.


localrules:
    fig1,
    fig6,
    fig2,
    fig3,
    fig7,
    fig4,
    fig5,


rule fig1:
    input:
        result="results/linear/synthetic_zero.nc",
        theory="results/theory/synthetic_zero.nc",
    output:
        report(
            "figures/fig1.pdf",
            caption="../report/fig1.rst",
            category="Synthetic data",
        ),
    log:
        "logs/figures/fig1.log",
    benchmark:
        "logs/benchmarks/figures/fig1.tsv"
    conda:
        "../../envs/labaug.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        figure="fig1",
    script:
        "../scripts/figure.py"


rule fig6:
    input:
        result="results/linear/synthetic_low.nc",
        theory="results/theory/synthetic_low.nc",
    output:
        report(
            "figures/fig6.pdf",
            caption="../report/fig6.rst",
            category="Synthetic data",
        ),
    log:
        "logs/figures/fig6.log",
    benchmark:
        "logs/benchmarks/figures/fig6.tsv"
    conda:
        "../../envs/labaug.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        figure="fig6",
    script:
        "../scripts/figure.py"


# Binary image tasks (Sec. 4.2, App. B): one row per dataset in config image_datasets.
if config["image_datasets"]:
    FIGURES += [2, 3] * ZERO + [7] * LOW


rule fig2:
    input:
        unpack(image_results("zero")),
    output:
        report(
            "figures/fig2.pdf",
            caption="../report/fig2.rst",
            category="Binary images",
        ),
    log:
        "logs/figures/fig2.log",
    benchmark:
        "logs/benchmarks/figures/fig2.tsv"
    conda:
        "../../envs/labaug.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        figure="fig2",
    script:
        "../scripts/figure.py"


rule fig3:
    input:
        unpack(image_results("zero")),
    output:
        report(
            "figures/fig3.pdf",
            caption="../report/fig3.rst",
            category="Binary images",
        ),
    log:
        "logs/figures/fig3.log",
    benchmark:
        "logs/benchmarks/figures/fig3.tsv"
    conda:
        "../../envs/labaug.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        figure="fig3",
    script:
        "../scripts/figure.py"


rule fig7:
    input:
        unpack(image_results("low")),
    output:
        report(
            "figures/fig7.pdf",
            caption="../report/fig7.rst",
            category="Binary images",
        ),
    log:
        "logs/figures/fig7.log",
    benchmark:
        "logs/benchmarks/figures/fig7.tsv"
    conda:
        "../../envs/labaug.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        figure="fig7",
    script:
        "../scripts/figure.py"


# ResNet-18 with class channels (Sec. 4.3): one panel per dataset in config resnet.datasets.
if config["resnet"]["datasets"]:
    FIGURES += [4, 5]


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
