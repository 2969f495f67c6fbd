# Linear sweeps (Sec. 4.1, 4.2, App. B): one job per (experiment, variance, method) trains the
# method's whole grid as one batched model for each seed in turn (one start-up for all seeds)
# and writes one file per seed. Image sweeps read their standardized task (rule binary_task).


rule linear_sweep:
    input:
        task=task_input,
    output:
        LINEAR_SEED_OUTPUTS,
    log:
        rooted("logs/linear/{data}_{variance}/{method}.log"),
    benchmark:
        rooted("logs/benchmarks/linear/{data}_{variance}/{method}.tsv")
    priority: sweep_priority
    conda:
        "../../envs/labaug.yaml"
    threads: 1
    resources:
        **LINEAR_GPU,
        mem_mb=3000,
        runtime=60 * len(config["seeds"]),
    params:
        seeds=config["seeds"],
        # Each seed's finished result with its fingerprint (labaug.jobs.linear_job): a seed
        # that finished with the same settings is not trained again. Under the output root.
        caches=lambda wildcards: expand(
            rooted("checkpoints/linear/{data}_{variance}/{method}/seed{seed}.nc"),
            seed=config["seeds"],
            **dict(wildcards),
        ),
        # The configuration this job depends on (labaug.slices): Snakemake's params trigger
        # reruns it when this slice changes, and only then; the job reads nothing else.
        config=lambda wildcards: slices.linear_slice(
            config, wildcards.data, wildcards.variance, wildcards.method
        ),
    script:
        "../scripts/train_linear.py"


# How hard each class pair is for plain logistic regression (labaug.pairs): on demand only,
# `snakemake results/pairs/fmnist.nc`; the log holds the table, hardest pair first.
rule pair_difficulty:
    input:
        raw=RAW_FILE,
    output:
        rooted("results/pairs/{dataset}.nc"),
    log:
        rooted("logs/pairs/{dataset}.log"),
    benchmark:
        rooted("logs/benchmarks/pairs/{dataset}.tsv")
    conda:
        "../../envs/labaug.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=240,
    params:
        # The protocol's optimizer and the first seed (labaug.slices.pairs_slice).
        config=slices.pairs_slice(config),
    script:
        "../scripts/pair_difficulty.py"
