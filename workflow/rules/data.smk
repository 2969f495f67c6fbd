# Raw image data, the DAG roots: data/raw/{dataset}.npz from a local source directory
# (config data_sources) or a download. Downloads run on the submitting host, since cluster
# compute nodes often have no internet.


localrules:
    fetch_raw,


def raw_source_files(wildcards):
    """The local source files of a dataset when its configured directory holds them all."""
    from labaug.data.raw import local_source_files

    return local_source_files(
        wildcards.dataset, config["data_sources"].get(wildcards.dataset)
    )


rule fetch_raw:
    input:
        raw_source_files,
    output:
        "data/raw/{dataset}.npz",
    log:
        "logs/data/fetch_{dataset}.log",
    benchmark:
        "logs/benchmarks/data/fetch_{dataset}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        # Rerun triggers: a different source directory or checksums means different data.
        source=lambda wildcards: config["data_sources"].get(wildcards.dataset),
        checksums=lambda wildcards: config.get("data_checksums", {}).get(
            wildcards.dataset
        ),
    script:
        "../scripts/fetch_raw.py"
