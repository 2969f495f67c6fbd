# Raw image data, the DAG roots: data/raw/{dataset}.npz from a local source directory
# (config data_sources) or a download. Downloads run on the submitting host, since cluster
# compute nodes often have no internet.


localrules:
    fetch_raw,


rule fetch_raw:
    input:
        raw_source_files,
    output:
        RAW_FILE,
    log:
        rooted("logs/data/fetch_{dataset}.log"),
    benchmark:
        rooted("logs/benchmarks/data/fetch_{dataset}.tsv")
    conda:
        "../../envs/labaug.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        # Rerun trigger: a different source directory or checksums means different data.
        config=lambda wildcards: slices.fetch_slice(config, wildcards.dataset),
    script:
        "../scripts/fetch_raw.py"


# A binary image task (Sec. 4.2), standardized once per (dataset, class pair, variance) with the
# identifying values of every seed, read by the task's sweep jobs (labaug.data.images).
rule binary_task:
    input:
        raw=RAW_FILE,
    output:
        TASK_FILE,
    log:
        rooted("logs/data/task_{dataset}_pair{pair}_{variance}.log"),
    benchmark:
        rooted("logs/benchmarks/data/task_{dataset}_pair{pair}_{variance}.tsv")
    conda:
        "../../envs/labaug.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        # Rerun trigger: the identifying value, its noise and the seeds (labaug.slices).
        config=lambda wildcards: slices.task_slice(config, wildcards.variance),
    script:
        "../scripts/binary_task.py"
