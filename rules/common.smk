# A killed run's leftovers, configuration checks, the study's design (sbmoe.pipeline.design: which
# systems, seeds and test sets) and the path layout (sbmoe.pipeline.layout), bound for the rules.
import sys

from snakemake.logging import logger
from snakemake.utils import validate

from sbmoe.io.errors import InputError
from sbmoe.models.hub import is_hub_id
from sbmoe.pipeline import layout
from sbmoe.pipeline.design import Study
from sbmoe.pipeline.resume import WorkdirBusy, claim_workdir, is_dry_run
from sbmoe.pipeline.study import check_config_files, check_study, study_table
from sbmoe.systems.names import poolings, trained_system_pattern

# After kill -9 or a power loss, Snakemake's lock and the killed jobs' scratch folders are left
# behind: removed here when no other run of this workflow is alive in the folder (sbmoe.pipeline.resume).
# A second run while one is alive is refused here, before Snakemake's own lock check (which would
# advise --unlock); a dry run may look on.
if workflow.is_main_process:
    try:
        for done in claim_workdir(dry_run=is_dry_run(sys.argv)):
            logger.info(done)
    except WorkdirBusy as error:
        raise WorkflowError(str(error))


# the files the configuration came from (--configfile, else the Snakefile's configfile:), to name them
CONFIG_FILES = [str(path) for path in workflow.configfiles]
try:
    check_config_files(CONFIG_FILES)
except InputError as error:
    raise WorkflowError(f"invalid configuration: {error}")
validate(config, schema="../workflow/schemas/config.schema.yaml")
try:
    DATASETS = study_table(config)
    check_study(config, DATASETS)
except InputError as error:
    raise WorkflowError(f"invalid configuration ({', '.join(CONFIG_FILES) or 'no file'}): {error}")

STUDY = Study(config, DATASETS)
TRAIN_LAYERS = STUDY.train_layers
FROZEN = STUDY.frozen
PARTIAL = STUDY.partial
TRAINED_SYSTEM = trained_system_pattern()  # every trained variant of sbmoe.systems.registry


wildcard_constraints:
    encoder="[a-z0-9][a-z0-9-]*",
    trainset="[a-z0-9][a-z0-9-]*",
    testset="[a-z0-9][a-z0-9-]*",
    dataset="[a-z0-9][a-z0-9-]*",
    system=f"zeroshot|{TRAINED_SYSTEM}",
    seed="[0-9]+",
    shard="[0-9]+",
    corpus="corpus(\\.[a-z0-9-]+)?",
    split="[a-z0-9-]+",


# ---- input and params functions: the wildcards' values passed to the design ----


def dataset_input(wildcards):
    return layout.dataset(wildcards.dataset)


def testset_input(wildcards):
    return layout.dataset(wildcards.testset)


def base_model(wildcards):
    """The untrained encoder, base of the pooled and prefix caches."""
    return layout.untrained_model(wildcards.encoder)


def model_input(wildcards):
    return layout.model(wildcards)


def corpus_split(wildcards):
    return layout.corpus_split(wildcards.corpus)


def shard_index(wildcards):
    return int(wildcards.shard)


def dataset_shards(wildcards):
    return STUDY.num_shards(wildcards.dataset)


def testset_shards(wildcards):
    return STUDY.num_shards(wildcards.testset)


def system_poolings(wildcards):
    return list(poolings(wildcards.system))


def corpus_threads(wildcards):
    """Cores per corpus shard of the dataset (or test set); a cluster executor has no total core count."""
    cores = workflow.resource_settings.cores
    dataset = wildcards.get("dataset") or wildcards.testset
    return STUDY.cores_per_shard(None if cores == sys.maxsize else cores, dataset)


# ---- what rules/analysis.smk reads: every evaluation, routing and training log, with its keys ----

evaluation_records = STUDY.evaluation_records
routing_records = STUDY.routing_records
tsne_panels = STUDY.tsne_panels
curve_records = STUDY.curve_records
in_domain_pairs = STUDY.in_domain_pairs
zero_shot_trainset = STUDY.zero_shot_trainset
DATASET_LABELS = STUDY.dataset_labels()
DATASET_BENCHMARKS = STUDY.dataset_benchmarks()
ROUTING_EXPERTS = STUDY.routing.experts
router_records = STUDY.routing.router_records
router_pairs = STUDY.routing.router_pairs
routing_macro_inputs = STUDY.routing.macro_inputs
