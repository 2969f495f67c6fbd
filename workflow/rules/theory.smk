# Theory check (Theorems 3.1-3.4, Corollary 3.2): exact minimizers of the population
# losses on the synthetic data, and the figure that sets the trained models beside them.


localrules:
    theory_figure,


rule theory:
    output:
        "results/theory/synthetic_{variance}.nc",
    log:
        "logs/theory/synthetic_{variance}.log",
    benchmark:
        "logs/benchmarks/theory/synthetic_{variance}.tsv"
    conda:
        "../../envs/labaug.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    script:
        "../scripts/theory.py"


rule theory_figure:
    input:
        unpack(theory_figure_input),
    output:
        report(
            "figures/theory.pdf",
            caption="../report/theory.rst",
            category="Synthetic data",
        ),
    log:
        "logs/figures/theory.log",
    benchmark:
        "logs/benchmarks/figures/theory.tsv"
    conda:
        "../../envs/labaug.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        figure="theory_comparison",
    script:
        "../scripts/figure.py"
