# Aggregation: per-seed netCDF files -> one file per experiment (xarray).


localrules:
    aggregate_linear,


rule aggregate_linear:
    input:
        seeds=linear_seed_files,
        damaged=DAMAGED,
    output:
        rooted("results/linear/{data}_{variance}.nc"),
    log:
        rooted("logs/aggregate/linear_{data}_{variance}.log"),
    benchmark:
        rooted("logs/benchmarks/aggregate/linear_{data}_{variance}.tsv")
    conda:
        "../../envs/labaug.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        experiment=lambda wildcards: linear_experiment(wildcards.data),
        # The order of the experiment's methods (labaug.slices; the rerun trigger).
        config=lambda wildcards: slices.methods_slice(
            config, linear_experiment(wildcards.data)
        ),
    script:
        "../scripts/aggregate.py"
