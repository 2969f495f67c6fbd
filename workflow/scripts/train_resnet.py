# Thin adapter: one class-channel run (dataset, model, method, value, seed) ->
# labaug.jobs.resnet_job. It reads its config slice; checkpoint_minutes and the device setting
# change how it runs, not its numbers, so they come from the config without being rerun
# triggers.
from labaug.jobs import logged_job, resnet_job

with logged_job(snakemake.log[0], snakemake.rule, dict(snakemake.wildcards)):
    resnet_job(
        snakemake.params.config,
        dataset=snakemake.wildcards.dataset,
        method=snakemake.wildcards.method,
        seed=int(snakemake.wildcards.seed),
        model=snakemake.wildcards.model,
        grid=int(snakemake.wildcards.grid),
        checkpoint=snakemake.params.checkpoint,
        out=snakemake.output[0],
        raw_path=snakemake.input.raw,
        threads=snakemake.threads,
        device=snakemake.params.device,
        rule=snakemake.rule,
        checkpoint_minutes=snakemake.config["resnet"]["checkpoint_minutes"],
        device_setting=snakemake.config["resnet"]["device"],
    )
