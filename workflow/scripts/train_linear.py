# Thin adapter: one linear sweep job -> labaug.jobs.linear_job (reads its config slice only).
from labaug.jobs import linear_job, logged_job

with logged_job(snakemake.log[0], snakemake.rule, dict(snakemake.wildcards)):
    linear_job(
        snakemake.params.config,
        data=snakemake.wildcards.data,
        variance=snakemake.wildcards.variance,
        method=snakemake.wildcards.method,
        seed=int(snakemake.wildcards.seed),
        out=snakemake.output[0],
        raw_path=snakemake.input.raw or None,
        threads=snakemake.threads,
        rule=snakemake.rule,
    )
