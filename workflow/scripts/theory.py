# Thin adapter: exact minimizers for one synthetic variant -> labaug.theory.theory_job.
from labaug.jobs import setup_logging
from labaug.theory import theory_job

setup_logging(snakemake.log[0])
theory_job(snakemake.config, snakemake.wildcards.variance, snakemake.output[0])
