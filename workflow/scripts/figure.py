# Thin adapter: draw one figure (params.draw names the labaug.plots function) from result files
# (input `damaged`, the markers of files moved aside as unreadable, only triggers reruns).
from labaug.jobs import figure_job, logged_job

with logged_job(snakemake.log[0], snakemake.rule, dict(snakemake.wildcards)):
    inputs = {k: v for k, v in snakemake.input.items() if k != "damaged"}
    figure_job(snakemake.params.draw, inputs, snakemake.output[0])
