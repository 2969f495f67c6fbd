# Thin adapter: per-seed result files -> one experiment file.
from labaug.jobs import aggregate_job, logged_job

with logged_job(snakemake.log[0], snakemake.rule, dict(snakemake.wildcards)):
    aggregate_job(
        snakemake.params.config,
        list(snakemake.input.seeds),
        snakemake.output[0],
        experiment=snakemake.params.experiment,
    )
