# Figures: one rule, driven by one table; each figure is drawn only from result files.
from labaug.captions import figure_caption

# One row per figure target figures/{name}.pdf:
#   experiment: the registry's experiment whose methods it shows (labaug.augment)
#   draw:      the function of labaug.plots that draws it
#   category:  its section of `snakemake --report`
#   needs:     what `rule all` requires in the config to build it
#   inputs:    an input function of the wildcards -> {argument of draw: result file}
FIGURE_TABLE = {
    "fig1": dict(
        experiment="synthetic",
        draw="fig1",
        category="Synthetic data",
        needs=lambda: "zero" in config["variances"],
        inputs=lambda wc: {
            "result": "results/linear/synthetic_zero.nc",
            "theory": "results/theory/synthetic_zero.nc",
        },
    ),
    "fig6": dict(
        experiment="synthetic",
        draw="fig6",
        category="Synthetic data",
        needs=lambda: "low" in config["variances"],
        inputs=lambda wc: {
            "result": "results/linear/synthetic_low.nc",
            "theory": "results/theory/synthetic_low.nc",
        },
    ),
    "theory": dict(
        experiment="synthetic",
        draw="theory_comparison",
        category="Synthetic data",
        needs=lambda: True,
        inputs=lambda wc: {
            f"{kind}_{variance}": f"results/{folder}/synthetic_{variance}.nc"
            for variance in config["variances"]
            for kind, folder in (("result", "linear"), ("theory", "theory"))
        },
    ),
    "fig2": dict(
        experiment="binary_images",
        draw="fig2",
        category="Binary images",
        needs=lambda: bool(config["image_datasets"]) and "zero" in config["variances"],
        inputs=lambda wc: image_results("zero"),
    ),
    "fig3": dict(
        experiment="binary_images",
        draw="fig3",
        category="Binary images",
        needs=lambda: bool(config["image_datasets"]) and "zero" in config["variances"],
        inputs=lambda wc: image_results("zero"),
    ),
    "fig7": dict(
        experiment="binary_images",
        draw="fig7",
        category="Binary images",
        needs=lambda: bool(config["image_datasets"]) and "low" in config["variances"],
        inputs=lambda wc: image_results("low"),
    ),
    "fig4": dict(
        experiment="class_channels",
        draw="fig4",
        category="ResNet-18",
        needs=lambda: bool(config["resnet"]["datasets"]),
        inputs=lambda wc: {
            dataset: f"results/resnet/{dataset}.nc"
            for dataset in config["resnet"]["datasets"]
        },
    ),
    "fig5": dict(
        experiment="class_channels",
        draw="fig5",
        category="ResNet-18",
        needs=lambda: bool(config["resnet"]["datasets"]),
        inputs=lambda wc: {
            "example": f"results/resnet/{config['resnet']['datasets'][0]}_example.nc"
        },
    ),
}


def image_results(variance):
    """{dataset: results/linear/{dataset}_{variance}.nc}, in config image_datasets order."""
    return {
        dataset: f"results/linear/{dataset}_{variance}.nc"
        for dataset in config["image_datasets"]
    }


def all_figures():
    """Every figure that the configured experiments produce."""
    return [
        f"figures/{name}.pdf" for name, row in FIGURE_TABLE.items() if row["needs"]()
    ]


def figure_inputs(wildcards):
    """The result files of one figure, named as its draw function's arguments."""
    return FIGURE_TABLE[wildcards.figure]["inputs"](wildcards)


localrules:
    figure,


rule figure:
    input:
        unpack(figure_inputs),
    output:
        report(
            "figures/{figure}.pdf",
            caption="../report/figure.rst",
            category=lambda wildcards: FIGURE_TABLE[wildcards.figure]["category"],
        ),
    log:
        "logs/figures/{figure}.log",
    benchmark:
        "logs/benchmarks/figures/{figure}.tsv"
    wildcard_constraints:
        figure="|".join(FIGURE_TABLE),
    conda:
        "../../envs/labaug.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        draw=lambda wildcards: FIGURE_TABLE[wildcards.figure]["draw"],
        # The caption, rendered from workflow/report/{figure}.rst with the config and the
        # methods the figure shows (labaug.captions); `snakemake --report` prints it.
        caption=lambda wildcards: figure_caption(
            wildcards.figure,
            FIGURE_TABLE[wildcards.figure]["experiment"],
            config,
            workflow.basedir,
        ),
    script:
        "../scripts/figure.py"
