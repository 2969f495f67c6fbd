# Linear sweeps (Sec. 4.1, 4.2, App. B): one job per (experiment, method, seed); the
# method's whole grid trains as one batched model inside the job.


rule linear_sweep:
    input:
        raw=raw_input,
    output:
        LINEAR_RESULT,
    log:
        "logs/linear/{data}_{variance}/{method}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/linear/{data}_{variance}/{method}/seed{seed}.tsv"
    conda:
        "../../envs/labaug.yaml"
    threads: 1
    resources:
        **LINEAR_GPU,
        mem_mb=2000,
        runtime=60,
    script:
        "../scripts/train_linear.py"
