# Thin adapter: one ResNet-18 run (dataset, method, seed) -> labaug.jobs.resnet_job.
from labaug.jobs import resnet_job, setup_logging

setup_logging(snakemake.log[0])
resnet_job(
    snakemake.config,
    dataset=snakemake.wildcards.dataset,
    method=snakemake.wildcards.method,
    seed=int(snakemake.wildcards.seed),
    out=snakemake.output[0],
    raw_path=snakemake.input.raw,
    threads=snakemake.threads,
    device=snakemake.params.device,
    rule=snakemake.rule,
)
