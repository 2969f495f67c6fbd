# Thin adapter: acquire one raw dataset (local source, else download) -> data/raw/{dataset}.npz.
# allow_download decides whether a download may happen, not what the data is: no rerun trigger.
from labaug.jobs import fetch_job, logged_job

with logged_job(snakemake.log[0], snakemake.rule, dict(snakemake.wildcards)):
    fetch_job(
        snakemake.params.config,
        snakemake.wildcards.dataset,
        snakemake.output[0],
        allow_download=snakemake.config["allow_download"],
    )
