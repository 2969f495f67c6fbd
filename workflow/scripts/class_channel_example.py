# Thin adapter: the Fig. 5 example of the class-channel transform -> labaug.jobs.
from labaug.jobs import class_channel_example_job, logged_job

with logged_job(snakemake.log[0], snakemake.rule, dict(snakemake.wildcards)):
    class_channel_example_job(
        snakemake.params.config,
        dataset=snakemake.wildcards.dataset,
        raw_path=snakemake.input.raw,
        out=snakemake.output[0],
    )
