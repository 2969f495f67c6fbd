# Thin adapter: acquire one raw dataset (local source, else download) -> data/raw/{dataset}.npz.
from labaug.jobs import fetch_job, setup_logging

setup_logging(snakemake.log[0])
fetch_job(snakemake.config, snakemake.wildcards.dataset, snakemake.output[0])
