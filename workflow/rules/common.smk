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


# Figure numbers that `rule all` builds; rule files append theirs.
FIGURES = [1, 6]
