# Thin adapter: one standardized binary image task -> labaug.jobs.task_job.
from labaug.jobs import logged_job, task_job

with logged_job(snakemake.log[0], snakemake.rule, dict(snakemake.wildcards)):
    first, second = snakemake.wildcards.pair.split("-")
    task_job(
        snakemake.params.config,
        snakemake.wildcards.dataset,
        (int(first), int(second)),
        snakemake.wildcards.variance,
        snakemake.input.raw,
        snakemake.output[0],
    )
