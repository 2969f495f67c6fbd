# Thin adapter: exact minimizers for one synthetic variant -> labaug.jobs.theory_job.
from labaug.jobs import logged_job, theory_job

with logged_job(snakemake.log[0], snakemake.rule, dict(snakemake.wildcards)):
    theory_job(snakemake.params.config, snakemake.wildcards.variance, snakemake.output[0])
