# Raw image data, the DAG roots: data/raw/{dataset}.npz from a local source directory
# (config data_sources) or a download. Downloads run on the submitting host, since cluster
# compute nodes often have no internet.


localrules:
    fetch_raw,


rule fetch_raw:
    input:
        raw_source_files,
    output:
        "data/raw/{dataset}.npz",
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
