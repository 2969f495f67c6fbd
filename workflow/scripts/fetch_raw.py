# Thin adapter: acquire one raw dataset (local source, else download) -> data/raw/{dataset}.npz.
from labaug.data.raw import fetch_configured
from labaug.jobs import setup_logging

setup_logging(snakemake.log[0])
fetch_configured(snakemake.config, snakemake.wildcards.dataset, snakemake.output[0])
