# Thin adapter: per-seed result files -> one experiment file.
from labaug.jobs import aggregate_job, setup_logging

setup_logging(snakemake.log[0])
aggregate_job(
    snakemake.config,
    list(snakemake.input),
    snakemake.output[0],
    experiment=snakemake.params.experiment,
)
