# Linear sweeps (Sec. 4.1, 4.2, App. B): one job per (experiment, method, seed); the
# method's whole grid trains as one batched model inside the job.


rule linear_sweep:
    input:
        raw=raw_input,
    output:
        LINEAR_RESULT,
    log:
        rooted("logs/linear/{data}_{variance}/{method}/seed{seed}.log"),
    benchmark:
        rooted("logs/benchmarks/linear/{data}_{variance}/{method}/seed{seed}.tsv")
    conda:
        "../../envs/labaug.yaml"
    threads: 1
    resources:
        **LINEAR_GPU,
        mem_mb=2000,
        runtime=60,
    params:
        # The configuration this job depends on (labaug.slices): Snakemake's params trigger
        # reruns it when this slice changes, and only then; the job reads nothing else.
        config=lambda wildcards: slices.linear_slice(
            config, wildcards.data, wildcards.variance, wildcards.method
        ),
    script:
        "../scripts/train_linear.py"
