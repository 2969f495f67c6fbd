# Thin adapter: the aggregated result files -> results/summary.md (labaug.jobs.summary_job)
# (input `damaged`, the markers of files moved aside as unreadable, only triggers reruns).
from labaug.jobs import logged_job, summary_job

with logged_job(snakemake.log[0], snakemake.rule, dict(snakemake.wildcards)):
    inputs = {k: v for k, v in snakemake.input.items() if k != "damaged"}
    summary_job(inputs, snakemake.output[0])
