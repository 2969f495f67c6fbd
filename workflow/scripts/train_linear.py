# Thin adapter: one linear sweep job -> labaug.jobs.linear_job.
from labaug.jobs import linear_job, setup_logging

setup_logging(snakemake.log[0])
linear_job(
    snakemake.config,
    data=snakemake.wildcards.data,
    variance=snakemake.wildcards.variance,
    method=snakemake.wildcards.method,
    seed=int(snakemake.wildcards.seed),
    out=snakemake.output[0],
    raw_path=snakemake.input.raw or None,
    threads=snakemake.threads,
    rule=snakemake.rule,
)
