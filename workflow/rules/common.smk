# Input functions and shared settings for every rule file.
from labaug import augment
from labaug.config import IMAGE_DATASETS, LINEAR_DATA, VARIANCES
from labaug.devices import device_summary, gpu_resources, resolve_device


wildcard_constraints:
    data="|".join(LINEAR_DATA),
    dataset="|".join(IMAGE_DATASETS),
    variance="|".join(VARIANCES),
    method="|".join(augment.names()),
    seed=r"\d+",


# The device model (labaug.devices), resolved once, here, by the process that builds the DAG:
# resnet.device auto = cuda when this process sees a CUDA GPU. Jobs get the resolved device as a
# parameter (jobs that Snakemake re-parses on a cluster node read it from the environment, so
# auto is not resolved again there). Only jobs that will use a GPU request the `gpu` resource;
# a cuda job that finds no GPU fails at once (labaug.jobs).
RESNET_DEVICE_ENV = "LABAUG_RESNET_DEVICE"
LINEAR_DEVICE = config["linear"]["device"]
if workflow.is_main_process or RESNET_DEVICE_ENV not in os.environ:
    RESNET_DEVICE = resolve_device(config["resnet"]["device"])
else:
    RESNET_DEVICE = resolve_device(os.environ[RESNET_DEVICE_ENV])
os.environ[RESNET_DEVICE_ENV] = RESNET_DEVICE
LINEAR_GPU = gpu_resources(LINEAR_DEVICE)
RESNET_GPU = gpu_resources(RESNET_DEVICE)

# resnet.runs_per_gpu = N: N GPU jobs share each GPU. Every GPU job still requests gpu=1 (so a
# SLURM job gets one whole GPU); where a GPU count is given (--resources gpu=1, or the local
# profile), this process admits N times as many GPU jobs at once.
RUNS_PER_GPU = int(config["resnet"]["runs_per_gpu"])
if (
    workflow.is_main_process
    and RUNS_PER_GPU > 1
    and "gpu" in workflow.global_resources
    and isinstance(workflow.global_resources["gpu"].value, int)
):
    workflow.register_resource(
        "gpu", workflow.global_resources["gpu"].value * RUNS_PER_GPU
    )

if workflow.is_main_process:
    print(
        device_summary(
            config,
            RESNET_DEVICE,
            {"train_resnet": RESNET_GPU, "linear_sweep": LINEAR_GPU},
        ),
        file=sys.stderr,
    )

LINEAR_RESULT = "results/linear/{data}_{variance}/{method}/seed{seed}.nc"
RESNET_RESULT = "results/resnet/{dataset}/{method}/seed{seed}.nc"


def linear_experiment(data):
    """The registry's experiment name of a linear sweep on ``data``."""
    return "synthetic" if data == "synthetic" else "binary_images"


def methods_for(experiment):
    """The configured methods (config order) that the registry runs on ``experiment``."""
    return augment.for_experiment(config["methods"], experiment)


def raw_input(wildcards):
    """The raw npz a linear experiment reads; synthetic data has none."""
    if wildcards.data == "synthetic":
        return []
    return f"data/raw/{wildcards.data}.npz"


def linear_seed_files(wildcards):
    """Every per-seed file of one linear experiment, in config order."""
    return expand(
        LINEAR_RESULT,
        data=wildcards.data,
        variance=wildcards.variance,
        method=methods_for(linear_experiment(wildcards.data)),
        seed=config["seeds"],
    )


def resnet_seed_files(wildcards):
    """Every per-seed ResNet run of one dataset, in config order."""
    return expand(
        RESNET_RESULT,
        dataset=wildcards.dataset,
        method=methods_for("class_channels"),
        seed=config["seeds"],
    )


def raw_source_files(wildcards):
    """The local source files of a dataset when its configured directory holds them all."""
    from labaug.data.raw import local_source_files

    return local_source_files(
        wildcards.dataset, config["data_sources"].get(wildcards.dataset)
    )
