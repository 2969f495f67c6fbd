# Input functions and shared settings for every rule file.
from labaug import augment
from labaug.config import IMAGE_DATASETS, LINEAR_DATA, VARIANCES


wildcard_constraints:
    data="|".join(LINEAR_DATA),
    dataset="|".join(IMAGE_DATASETS),
    variance="|".join(VARIANCES),
    method="|".join(augment.names()),
    seed=r"\d+",


# Rules that train ask for the GPU exactly when the configured device is cuda.
GPU = 1 if config["device"] == "cuda" else 0

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
