# Thin adapter: the aggregated result files -> results/summary.md (labaug.jobs.summary_job).
from labaug.jobs import logged_job, summary_job

with logged_job(snakemake.log[0], snakemake.rule, dict(snakemake.wildcards)):
    summary_job(dict(snakemake.input), snakemake.output[0])
