# Thin adapter: one linear sweep job (every seed) -> labaug.jobs.linear_job (reads its slice only).
from labaug.jobs import linear_job, logged_job

task = snakemake.input.task  # [] for synthetic data, else the one task file
with logged_job(snakemake.log[0], snakemake.rule, dict(snakemake.wildcards)):
    linear_job(
        snakemake.params.config,
        data=snakemake.wildcards.data,
        variance=snakemake.wildcards.variance,
        method=snakemake.wildcards.method,
        seeds=[int(s) for s in snakemake.params.seeds],
        outs=list(snakemake.output),
        task_path=task if isinstance(task, str) else (task[0] if task else None),
        threads=snakemake.threads,
        rule=snakemake.rule,
        caches=list(snakemake.params.caches),
    )
