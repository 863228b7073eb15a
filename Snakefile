# Reproducing "Mixture of Experts Approaches in Dense Retrieval Tasks" (SB-MoE).
# Run the full study with `snakemake --cores all`; see README.md for the demo and cluster profiles.
from snakemake.utils import min_version

min_version("8.0")


# The full study, unless --configfile names another (config/demo.yaml, config/ci.yaml): a study's
# file replaces this one rather than being merged into it.
if not config:

    configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/retrieve.smk"
include: "rules/evaluate.smk"
include: "rules/routing.smk"
include: "rules/analysis.smk"
include: "rules/verdicts.smk"
include: "rules/paper.smk"


rule all:
    default_target: True
    input:
        STUDY.targets(),
