# Thin adapter: how hard each class pair is for a linear model -> labaug.jobs.pair_difficulty_job.
from labaug.jobs import logged_job, pair_difficulty_job

with logged_job(snakemake.log[0], snakemake.rule, dict(snakemake.wildcards)):
    pair_difficulty_job(
        snakemake.params.config,
        dataset=snakemake.wildcards.dataset,
        raw_path=snakemake.input.raw,
        out=snakemake.output[0],
    )
