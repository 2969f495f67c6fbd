# Thin adapter: draw one figure (named by params.figure) from result files.
from labaug.jobs import figure_job, setup_logging

setup_logging(snakemake.log[0])
figure_job(snakemake.params.figure, dict(snakemake.input), snakemake.output[0])
