# Thin adapter: draw one figure (params.draw names the labaug.plots function) from result files.
from labaug.jobs import figure_job, setup_logging

setup_logging(snakemake.log[0])
figure_job(snakemake.params.draw, dict(snakemake.input), snakemake.output[0])
