# Thin adapter: exact minimizers for one synthetic variant -> labaug.jobs.theory_job.
from labaug.jobs import setup_logging, theory_job

setup_logging(snakemake.log[0])
theory_job(snakemake.config, snakemake.wildcards.variance, snakemake.output[0])
