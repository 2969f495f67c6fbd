# Input functions and shared settings for every rule file.
from labaug.config import IMAGE_DATASETS, LINEAR_DATA, METHODS, VARIANCES


wildcard_constraints:
    data="|".join(LINEAR_DATA),
    dataset="|".join(IMAGE_DATASETS),
    variance="|".join(VARIANCES),
    method="|".join(METHODS),
    seed=r"\d+",


# Rules that train ask for the GPU exactly when the configured device is cuda.
GPU = 1 if config["device"] == "cuda" else 0

LINEAR_RESULT = "results/linear/{data}_{variance}/{method}/seed{seed}.nc"


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
        method=config["methods"],
        seed=config["seeds"],
    )


def all_figures():
    """Every figure the configured experiments produce."""
    return [f"figures/fig{n}.pdf" for n in FIGURES]


# Figure numbers that `rule all` builds; rule files append theirs. The zero-variance
# experiments feed Figs. 1-3, the low-variance ones Figs. 6-7 (config `variances`).
ZERO = "zero" in config["variances"]
LOW = "low" in config["variances"]
FIGURES = [1] * ZERO + [6] * LOW


# Input functions of the later rule files, collected here so that those files hold only rules.
def raw_source_files(wildcards):
    """The local source files of a dataset when its configured directory holds them all."""
    from labaug.data.raw import local_source_files

    return local_source_files(
        wildcards.dataset, config["data_sources"].get(wildcards.dataset)
    )


def image_results(variance):
    """Input function: {dataset: results/linear/{dataset}_{variance}.nc}, in config order."""

    def inputs(wildcards):
        return {
            dataset: f"results/linear/{dataset}_{variance}.nc"
            for dataset in config["image_datasets"]
        }

    return inputs


RESNET_RESULT = "results/resnet/{dataset}/{method}/seed{seed}.nc"


def resnet_seed_files(wildcards):
    """Every per-seed ResNet run of one dataset, in config order."""
    return expand(
        RESNET_RESULT,
        dataset=wildcards.dataset,
        method=config["methods"],
        seed=config["seeds"],
    )


def resnet_results(wildcards):
    """Input function: {dataset: results/resnet/{dataset}.nc} for config resnet.datasets."""
    return {
        dataset: f"results/resnet/{dataset}.nc"
        for dataset in config["resnet"]["datasets"]
    }


def theory_figure_input(wildcards):
    """A trained sweep and its exact minimizers for every configured synthetic variant."""
    files = {}
    for variance in config["variances"]:
        files[f"result_{variance}"] = f"results/linear/synthetic_{variance}.nc"
        files[f"theory_{variance}"] = f"results/theory/synthetic_{variance}.nc"
    return files
