# Thin adapter: the Fig. 5 example of the class-channel transform -> labaug.jobs.
from labaug.jobs import class_channel_example_job, setup_logging

setup_logging(snakemake.log[0])
class_channel_example_job(
    snakemake.config,
    dataset=snakemake.wildcards.dataset,
    raw_path=snakemake.input.raw,
    out=snakemake.output[0],
)
