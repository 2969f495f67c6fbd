# labaug: every experiment and figure of "For Better or For Worse? Learning Minimum
# Variance Features With Label Augmentation". Rules live in workflow/rules/, one file
# per stage; the science lives in the labaug package.
import os
import sys

from snakemake.utils import min_version

# labaug is imported from this checkout, by this process and by every job, also where it
# is not pip-installed (e.g. jobs in a conda environment, --software-deployment-method conda).
sys.path.insert(0, workflow.basedir)
os.environ.update(
    PYTHONPATH=os.pathsep.join(
        p for p in (workflow.basedir, os.environ.get("PYTHONPATH")) if p
    )
)

from labaug.schema import validate_config

min_version("9.0")


# The defaults sit beside this Snakefile, so `-d elsewhere` still finds them; presets
# and user configs layer on top with --configfile.
configfile: os.path.join(workflow.basedir, "config.yaml")


# `snakemake --report report.html`: this overview, then every figure with its caption.
report: "workflow/report/workflow.rst"


# Reject bad values before any job runs, naming each offending key and what is allowed.
validate_config(
    config, os.path.join(workflow.basedir, "workflow", "schemas", "config.schema.yaml")
)


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/linear.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/theory.smk"
include: "workflow/rules/resnet.smk"


rule all:
    default_target: True
    input:
        all_figures(),
        rooted("results/summary.md"),
