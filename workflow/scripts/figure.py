# Thin adapter: draw one figure (params.draw names the labaug.plots function) from result files.
from labaug.jobs import figure_job, logged_job

with logged_job(snakemake.log[0], snakemake.rule, dict(snakemake.wildcards)):
    figure_job(snakemake.params.draw, dict(snakemake.input), snakemake.output[0])
