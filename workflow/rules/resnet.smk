# Class-channel runs (Sec. 4.3, Figs. 4, 5 and 8): one training job per (dataset, model,
# method, value, seed), resumable from checkpoints/ after a kill; aggregation per dataset; one
# example of the transform for Fig. 5 (the figures are in figures.smk).


localrules:
    aggregate_resnet,
    class_channel_example,


# Before the first job: say so when the ResNet runs about to train go to the CPU by surprise
# (resnet.device auto beside a GPU torch cannot use, or runs of the paper's size; labaug.devices).
# Counted from the jobs this invocation will run, so a target without ResNet runs says nothing.
onstart:
    for warning in device_warnings(
        config,
        RESNET_DEVICE,
        sum(job.rule.name == "train_resnet" for job in workflow.dag.needrun_jobs()),
    ):
        print(warning, file=sys.stderr)


rule train_resnet:
    input:
        raw=RAW_FILE,
    output:
        RESNET_RESULT,
    log:
        rooted(f"logs/{RESNET_RUN}.log"),
    benchmark:
        rooted(f"logs/benchmarks/{RESNET_RUN}.tsv")
    priority: seed_priority
    conda:
        "../../envs/labaug.yaml"
    threads: 1
    resources:
        **RESNET_GPU,
        mem_mb=16000,
        runtime=480,
    params:
        # resnet.device as resolved once for the whole DAG (common.smk): cpu or cuda.
        device=RESNET_DEVICE,
        # The run's checkpoint, under the output root (not an output: see below).
        checkpoint=lambda wildcards: rooted(f"checkpoints/{RESNET_RUN}.pt").format(
            **dict(wildcards)
        ),
        # The configuration this run depends on (labaug.slices; the rerun trigger). How it
        # runs (resnet.checkpoint_minutes, runs_per_gpu) is not part of it.
        config=lambda wildcards: slices.resnet_slice(
            config, wildcards.method, wildcards.model, int(wildcards.grid)
        ),
    # The job resumes from its checkpoint; not an output, since Snakemake deletes the outputs
    # of a failed job. A finished run keeps its final state and fingerprint there, so a rerun
    # of the same run rebuilds the result without training.
    script:
        "../scripts/train_resnet.py"


rule aggregate_resnet:
    input:
        seeds=resnet_seed_files,
        damaged=DAMAGED,
    output:
        rooted("results/resnet/{dataset}.nc"),
    log:
        rooted("logs/aggregate/resnet_{dataset}.log"),
    benchmark:
        rooted("logs/benchmarks/aggregate/resnet_{dataset}.tsv")
    conda:
        "../../envs/labaug.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        experiment="class_channels",
        config=slices.methods_slice(config, "class_channels"),
    script:
        "../scripts/aggregate.py"


rule class_channel_example:
    input:
        raw=RAW_FILE,
    output:
        rooted("results/resnet/{dataset}_example.nc"),
    log:
        rooted("logs/resnet/{dataset}_example.log"),
    benchmark:
        rooted("logs/benchmarks/resnet/{dataset}_example.tsv")
    conda:
        "../../envs/labaug.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        config=slices.example_slice(config),
    script:
        "../scripts/class_channel_example.py"
