# Theory check (Theorems 3.1-3.4, Corollary 3.2): exact minimizers of the population
# losses on the synthetic data (figures/theory.pdf sets the trained models beside them).


rule theory:
    output:
        rooted("results/theory/synthetic_{variance}.nc"),
    log:
        rooted("logs/theory/synthetic_{variance}.log"),
    benchmark:
        rooted("logs/benchmarks/theory/synthetic_{variance}.tsv")
    # Among the longest jobs of Figs. 1 and 6 (the low-variance Mixup sample): start it early.
    priority: 1
    conda:
        "../../envs/labaug.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        # The configuration this job depends on (labaug.slices; the rerun trigger).
        config=lambda wildcards: slices.theory_slice(config, wildcards.variance),
    script:
        "../scripts/theory.py"
