# Input functions and shared settings for every rule file.
from labaug import augment, datasets, models
from labaug.captions import ProvenanceCaption
from labaug.config import VARIANCES
from labaug.datasets.user import check_datasets
from labaug.devices import (
    device_summary,
    device_warnings,
    gpu_resources,
    resolve_device,
)
from labaug import slices
from labaug.train.inject import check_inject_nan
from labaug.errors import quarantined
from labaug.schema import ConfigError
from pathlib import Path

# The image datasets this config can name: the built-in ones and its own (config datasets).
IMAGE_DATASETS = datasets.names(config)


wildcard_constraints:
    data="|".join(["synthetic", *IMAGE_DATASETS]),
    dataset="|".join(IMAGE_DATASETS),
    variance="|".join(VARIANCES),
    method="|".join(augment.names()),
    model="|".join(models.names()),
    grid=r"\d+",
    seed=r"\d+",
    pair=r"\d+-\d+",


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

# Where each family trains, on the first lines of the output, also in a dry run.
if workflow.is_main_process:
    print(
        device_summary(
            config,
            RESNET_DEVICE,
            {"train_resnet": RESNET_GPU, "linear_sweep": LINEAR_GPU},
        ),
        file=sys.stderr,
    )

# Every output lives under config `output_root` (default "." = results/, figures/, logs/ and
# checkpoints/ in the working directory; each preset sets its own, e.g. runs/quick/), so runs of
# different configs never read the results of each other, and two roots can run at once. Raw data is
# prepared once for all roots (data/shared/) and linked into data/raw/ of each root (a changed
# source directory reruns fetch_raw through its params, and so every job that reads the
# dataset; docs/running.md ("What reruns") says how `--touch` records a mere move).
OUTPUT_ROOT = config["output_root"]


def rooted(path):
    """``path`` (results/..., figures/..., logs/...) under config output_root."""
    return path if OUTPUT_ROOT in (".", "") else f"{OUTPUT_ROOT}/{path}"


LINEAR_RESULT = rooted("results/linear/{data}_{variance}/{method}/seed{seed}.nc")
# The outputs of a sweep job: its (data, variance, method) file for every configured seed.
LINEAR_SEED_OUTPUTS = expand(
    rooted("results/linear/{{data}}_{{variance}}/{{method}}/seed{seed}.nc"),
    seed=config["seeds"],
)
# The raw data of this root: a link to the copy prepared once for every root (labaug.jobs.fetch_job
# keeps it in data/shared/), so roots never share, lock or delete the files of another.
RAW_FILE = rooted("data/raw/{dataset}.npz")
TASK_FILE = rooted("data/tasks/{dataset}_pair{pair}_{variance}.npz")
# One class-channel run: a model, a method at its grid-th value of resnet.hp.<method>, a seed.
RESNET_RUN = "resnet/{dataset}/{model}/{method}/grid{grid}/seed{seed}"
RESNET_RESULT = rooted(f"results/{RESNET_RUN}.nc")

# LABAUG_INJECT_NAN (failure injection, labaug.train.resnet) is checked here, before any job: a
# malformed entry, or one that matches no configured ResNet run and epoch, stops the DAG. So is
# every dataset of the user that the config runs: its files, its classes, its class pair.
if workflow.is_main_process:
    check_inject_nan(config)
    _problems = check_datasets(
        config, [*config["image_datasets"], *config["resnet"]["datasets"]]
    )
    if _problems:
        raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(_problems))


# Files a job found unreadable and moved aside (<file>.corrupt, labaug.jobs.logged_job). The
# markers are inputs of the cheap rules after training (aggregates, figures, summary): a new
# marker makes them rerun, and they in turn rebuild the missing file and what lies between
# (Snakemake alone would not regenerate a missing intermediate file whose consumers exist, and
# a figure would stay stale). Once rebuilt, they are newer than the markers.
DAMAGED = [f"{p}.corrupt" for p in quarantined([rooted("results"), rooted("data")])]
if workflow.is_main_process and DAMAGED:
    print(
        "labaug: rebuilding what depends on files moved aside as unreadable: "
        + ", ".join(DAMAGED),
        file=sys.stderr,
    )


def linear_experiment(data):
    """The experiment name (in the registry) of a linear sweep on ``data``."""
    return "synthetic" if data == "synthetic" else "binary_images"


def methods_for(experiment):
    """The configured methods (config order) that the registry runs on ``experiment``."""
    return augment.for_experiment(config["methods"], experiment)


def sweep_priority(wildcards):
    """Start the longest sweeps first (Snakemake runs higher priorities first): a method that
    draws random weights (Mixup, CutMix) takes 2-4 times as long as one that does not.
    """
    return 1 if slices.has_draws(wildcards.method) else 0


def task_input(wildcards):
    """The standardized task file a linear experiment reads (its configured class pair);
    synthetic data has none."""
    if wildcards.data == "synthetic":
        return []
    first, second = slices.pair_of(config, wildcards.data)
    return expand(
        TASK_FILE,
        dataset=wildcards.data,
        pair=f"{first}-{second}",
        variance=wildcards.variance,
    )


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
    """Every per-seed class-channel run of one dataset: each model, method, value and seed, in
    config order."""
    return [
        RESNET_RESULT.format(
            dataset=wildcards.dataset, model=model, method=method, grid=grid, seed=seed
        )
        for model in config["resnet"]["models"]
        for method in methods_for("class_channels")
        for grid in range(len(slices.resnet_values(config, method)))
        for seed in config["seeds"]
    ]


def seed_priority(wildcards):
    """Train every run of the first seed before any of the second, and so on (Snakemake runs
    higher priorities first): a run cut short by a deadline leaves whole seeds behind.
    """
    seeds = [int(s) for s in config["seeds"]]
    return len(seeds) - seeds.index(int(wildcards.seed))


def raw_source_files(wildcards):
    """The files a dataset is prepared from: the official files of a built-in one when its
    configured directory holds them all; every file of a dataset of the user (a changed file
    reruns the preparation and what follows)."""
    from labaug.data.raw import local_source_files
    from labaug.datasets.user import directory_of, files_of

    spec = datasets.get(wildcards.dataset, config)
    if spec.builtin:
        return local_source_files(
            wildcards.dataset, config["data_sources"].get(wildcards.dataset)
        )
    base = directory_of(spec)
    return [str(base / f.name) for f in files_of(spec) if (base / f.name).exists()]


def needs(zero=False, low=False, key=None):
    """What the config lacks for a figure (None: nothing): a method of its experiment (found
    by the row of the caller), the variances, or a non-empty list at ``key``."""
    lacking = []
    if zero and "zero" not in config["variances"]:
        lacking.append("variances to include zero")
    if low and "low" not in config["variances"]:
        lacking.append("variances to include low")
    if key is not None:
        value = config
        for part in key.split("."):
            value = value[part]
        if not value:
            lacking.append(f"{key} to name a dataset")
    return "; ".join(lacking) or None


# One row per figure target figures/{name}.pdf:
#   claims:    (variable, side): the paper says label smoothing and Mixup lie on that side of
#              weight decay; the caption counts where this run agrees (labaug.captions)
#   experiment: the experiment (of the registry) whose methods it shows (labaug.augment)
#   draw:      the function of labaug.plots that draws it
#   category:  its section of `snakemake --report`
#   needs:     what the config lacks to build it (`needs`; None: nothing)
#   inputs:    an input function of the wildcards -> {argument of draw: result file}
FIGURE_TABLE = {
    "fig1": dict(
        claims=[("w_high_norm", "below")],
        experiment="synthetic",
        draw="fig1",
        category="Synthetic data",
        needs=lambda: needs(zero=True),
        inputs=lambda wc: {
            "result": rooted("results/linear/synthetic_zero.nc"),
            "theory": rooted("results/theory/synthetic_zero.nc"),
        },
    ),
    "fig6": dict(
        claims=[("w_high_norm", "below")],
        experiment="synthetic",
        draw="fig6",
        category="Synthetic data",
        needs=lambda: needs(low=True),
        inputs=lambda wc: {
            "result": rooted("results/linear/synthetic_low.nc"),
            "theory": rooted("results/theory/synthetic_low.nc"),
        },
    ),
    "theory": dict(
        claims=[],
        experiment="synthetic",
        draw="theory_comparison",
        category="Synthetic data",
        needs=lambda: needs(),
        inputs=lambda wc: {
            f"{kind}_{variance}": rooted(f"results/{folder}/synthetic_{variance}.nc")
            for variance in config["variances"]
            for kind, folder in (("result", "linear"), ("theory", "theory"))
        },
    ),
    "fig2": dict(
        claims=[("test_error", "above")],
        experiment="binary_images",
        draw="fig2",
        category="Binary images",
        needs=lambda: needs(zero=True, key="image_datasets"),
        inputs=lambda wc: image_results("zero"),
    ),
    "fig3": dict(
        claims=[("pixel_ratio", "above")],
        experiment="binary_images",
        draw="fig3",
        category="Binary images",
        needs=lambda: needs(zero=True, key="image_datasets"),
        inputs=lambda wc: image_results("zero"),
    ),
    "fig7": dict(
        claims=[("test_error", "above"), ("pixel_ratio", "above")],
        experiment="binary_images",
        draw="fig7",
        category="Binary images",
        needs=lambda: needs(low=True, key="image_datasets"),
        inputs=lambda wc: image_results("low"),
    ),
    "fig4": dict(
        claims=[("test_error", "above")],
        experiment="class_channels",
        draw="fig4",
        category="ResNet-18",
        needs=lambda: needs(key="resnet.datasets"),
        inputs=lambda wc: {
            dataset: rooted(f"results/resnet/{dataset}.nc")
            for dataset in config["resnet"]["datasets"]
        },
    ),
    "fig8": dict(
        claims=[],
        experiment="class_channels",
        draw="fig8",
        category="ResNet-18",
        needs=lambda: needs(key="resnet.datasets"),
        inputs=lambda wc: {
            dataset: rooted(f"results/resnet/{dataset}.nc")
            for dataset in config["resnet"]["datasets"]
        },
    ),
    "fig5": dict(
        claims=[],
        experiment="class_channels",
        draw="fig5",
        category="ResNet-18",
        needs=lambda: needs(key="resnet.datasets"),
        inputs=lambda wc: {
            "example": rooted(
                f"results/resnet/{config['resnet']['datasets'][0]}_example.nc"
            )
        },
    ),
}


def image_results(variance):
    """{dataset: results/linear/{dataset}_{variance}.nc}, in config image_datasets order."""
    return {
        dataset: rooted(f"results/linear/{dataset}_{variance}.nc")
        for dataset in config["image_datasets"]
    }


def figure_problem(name):
    """Why the config cannot build figure ``name`` (None: it can): it lacks a method of the
    experiment of the figure (config methods), or what its row `needs`."""
    row = FIGURE_TABLE[name]
    if not methods_for(row["experiment"]):
        runs_there = augment.for_experiment(augment.names(), row["experiment"])
        return (
            f"methods to include a method that runs on {row['experiment']} "
            f"({', '.join(runs_there)}); config methods = {config['methods']}"
        )
    return row["needs"]()


def selected_figures():
    """The figures built by the all rule, from config `figures`, or (null) every figure the config can
    build; a name not in FIGURE_TABLE, or one the config cannot build, stops the DAG naming
    the key."""
    chosen = config["figures"]
    if chosen is None:
        return [name for name in FIGURE_TABLE if figure_problem(name) is None]
    problems = [
        f"figures: {name!r} is not a figure; choose from {', '.join(FIGURE_TABLE)}"
        for name in chosen
        if name not in FIGURE_TABLE
    ]
    problems += [
        f"figures: {name} needs {figure_problem(name)}"
        for name in chosen
        if name in FIGURE_TABLE and figure_problem(name) is not None
    ]
    if problems:
        raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(problems))
    return list(chosen)


def all_figures():
    """Every figure `rule all` builds (`selected_figures`), as paths."""
    return [rooted(f"figures/{name}.pdf") for name in selected_figures()]


def figure_inputs(wildcards):
    """The result files of one figure, named as the arguments of its draw function; a figure the
    config cannot build is refused, naming the config key, before any job runs."""
    problem = figure_problem(wildcards.figure)
    if problem is not None:
        target = rooted(f"figures/{wildcards.figure}.pdf")
        raise ConfigError(
            f"{target} cannot be built with this config: it needs {problem}"
        )
    return FIGURE_TABLE[wildcards.figure]["inputs"](wildcards)


def summary_inputs(wildcards):
    """The aggregated results behind the figures `rule all` builds, named for
    labaug.jobs.summary_job: linear_{data}_{variance}, theory_{variance}, resnet_{dataset}.
    """
    files = {}
    for name in selected_figures():
        for path in FIGURE_TABLE[name]["inputs"](wildcards).values():
            family, stem = Path(path).parent.name, Path(path).stem
            if family == "linear":
                files[f"linear_{stem}"] = path
            elif family == "theory":
                files[f"theory_{stem.removeprefix('synthetic_')}"] = path
            elif family == "resnet" and not stem.endswith("_example"):
                files[f"resnet_{stem}"] = path
    kinds = ("linear", "theory", "resnet")
    return dict(sorted(files.items(), key=lambda kv: kinds.index(kv[0].split("_")[0])))
