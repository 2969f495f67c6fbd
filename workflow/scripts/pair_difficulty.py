# Thin adapter: how hard each class pair is for a linear model -> labaug.jobs.pair_difficulty_job.
from labaug.jobs import pair_difficulty_job, setup_logging

setup_logging(snakemake.log[0])
pair_difficulty_job(
    snakemake.config,
    dataset=snakemake.wildcards.dataset,
    raw_path=snakemake.input.raw,
    out=snakemake.output[0],
)
