# Aggregation: per-seed netCDF files -> one file per experiment (xarray).


localrules:
    aggregate_linear,


rule aggregate_linear:
    input:
        linear_seed_files,
    output:
        "results/linear/{data}_{variance}.nc",
    log:
        "logs/aggregate/linear_{data}_{variance}.log",
    benchmark:
        "logs/benchmarks/aggregate/linear_{data}_{variance}.tsv"
    conda:
        "../../envs/labaug.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        experiment=lambda wildcards: linear_experiment(wildcards.data),
    script:
        "../scripts/aggregate.py"
