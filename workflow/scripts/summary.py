# Thin adapter: the aggregated result files -> results/summary.md (labaug.jobs.summary_job).
from labaug.jobs import setup_logging, summary_job

setup_logging(snakemake.log[0])
summary_job(dict(snakemake.input), snakemake.output[0])
