# Figures: one rule, driven by FIGURE_TABLE (common.smk); each figure is drawn only from
# result files.
localrules:
    figure,
    summary,


rule figure:
    input:
        unpack(figure_inputs),
        damaged=DAMAGED,
    output:
        report(
            rooted("figures/{figure}.pdf"),
            caption="../report/figure.rst",
            category=lambda wildcards: FIGURE_TABLE[wildcards.figure]["category"],
        ),
        # The PNG preview of the same drawing (labaug.plots.save), for the docs' gallery.
        preview=rooted("figures/{figure}.png"),
    log:
        rooted("logs/figures/{figure}.log"),
    benchmark:
        rooted("logs/benchmarks/figures/{figure}.tsv")
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
        # The caption, rendered from workflow/report/{figure}.rst with the configuration in
        # the provenance of the figure's result files and the methods it shows
        # (labaug.captions); `snakemake --report` prints it. Not a rerun trigger.
        caption=lambda wildcards: ProvenanceCaption(
            wildcards.figure,
            FIGURE_TABLE[wildcards.figure]["experiment"],
            config,
            workflow.basedir,
            list(figure_inputs(wildcards).values()),
            FIGURE_TABLE[wildcards.figure]["claims"],
        ),
    script:
        "../scripts/figure.py"


# The result tables (docs/results/ shows them), computed from the aggregated result files (labaug.summary).
rule summary:
    input:
        unpack(summary_inputs),
        damaged=DAMAGED,
    output:
        report(
            rooted("results/summary.md"),
            caption="../report/summary.rst",
            category="Summary",
        ),
    log:
        rooted("logs/summary.log"),
    benchmark:
        rooted("logs/benchmarks/summary.tsv")
    conda:
        "../../envs/labaug.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/summary.py"
