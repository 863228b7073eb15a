# A killed run's leftovers, configuration checks, the study's design (which systems, seeds and
# test sets), and input functions.
import os
import sys
from pathlib import Path

import yaml
from snakemake.logging import logger
from snakemake.utils import validate

from sbmoe.data.table import benchmark
from sbmoe.io.errors import InputError
from sbmoe.models.hub import is_hub_id
from sbmoe.pipeline.resume import WorkdirBusy, claim_workdir, is_dry_run
from sbmoe.systems.names import BM25, parse_expert, parse_system, poolings, study_systems, trained_system_pattern, variant_of
from sbmoe.pipeline.study import check_config_files, check_study, routing_split, routing_trainsets, study_table


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


TRAINED_SYSTEM = trained_system_pattern()  # every trained variant of sbmoe.systems.registry
SYSTEMS = study_systems(config["systems"])  # name -> model settings and training overrides


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


TRAIN_LAYERS = config["training"].get("train_layers", "all")
FROZEN = TRAIN_LAYERS == 0  # only blocks are trained, on the encoder's pooled embeddings
# the top N layers are trained over the cached hidden states entering them, shared by every system
PARTIAL = TRAIN_LAYERS not in (0, "all")
MODEL = "{encoder}/{trainset}/{system}/seed{seed}"
ENCODED = f"results/encoded/{MODEL}/{{testset}}"


def systems():
    """The system names of the study, in the order of config['systems']."""
    return list(SYSTEMS)


def testsets(trainset):
    """The test sets a model trained on ``trainset`` is evaluated on (in-domain first)."""
    if trainset == "none":
        return all_testsets()
    return list(dict.fromkeys(config["in_domain"][trainset] + config.get("zero_shot", {}).get(trainset, [])))


def all_testsets():
    sets = [t for tests in config["in_domain"].values() for t in tests]
    sets += [t for tests in config.get("zero_shot", {}).values() for t in tests]
    return list(dict.fromkeys(sets))


def all_datasets():
    return list(dict.fromkeys(list(config["in_domain"]) + all_testsets()))


def models():
    """Every model of the study as a wildcards dict (the zero-shot encoders have trainset 'none')."""
    found = [
        dict(encoder=encoder, trainset=trainset, system=system, seed=seed)
        for encoder in config["encoders"]
        for trainset in config["in_domain"]
        for system in systems()
        for seed in config["seeds"]
    ]
    if config.get("zeroshot", False):
        found += [dict(encoder=encoder, trainset="none", system="zeroshot", seed=0) for encoder in config["encoders"]]
    return found


def num_shards(testset):
    shards = config["encoding"].get("corpus_shards", {})
    return shards.get(testset, shards.get("default", 1))


def model_configs(wildcards):
    """The configuration dict (encoder, model, training, seed) of one system, as the one-entry list the
    train script takes."""
    return [system_config(wildcards.encoder, wildcards.system, int(wildcards.seed))]


def zeroshot_config(wildcards):
    return system_config(wildcards.encoder, "zeroshot", 0)


def system_config(encoder_name, system, seed):
    encoder = dict(config["encoders"][encoder_name])
    training = dict(config["training"])
    for key in ("temperature", "epochs"):
        if key in encoder:
            training[key] = encoder.pop(key)
    if system == "zeroshot":
        model = {"variant": "finetune"}
    else:
        model = dict(SYSTEMS[system]["model"])
        training.update(SYSTEMS[system]["training"])
    return {"encoder": encoder, "model": model, "training": training, "seed": seed}


def dataset_folder(name):
    return f"resources/datasets/{name}"


def dataset_input(wildcards):
    return dataset_folder(wildcards.dataset)


def corpus_split(wildcards):
    """``corpus`` is the test split's corpus, ``corpus.<split>`` a split's own (BEIR's NQ training set)."""
    return wildcards.corpus.partition(".")[2] or "test"


def corpus_threads(wildcards):
    """Cores per corpus shard: on one machine the shards of a corpus share it (one process per core
    encodes faster than one process on all cores). A cluster executor has no total (each job gets its
    own allocation, as the profile sizes it): a shard then asks for 8, as the other encoding rules."""
    cores = workflow.resource_settings.cores
    if cores is None or cores == sys.maxsize:
        return 8
    return max(1, cores // num_shards(wildcards.dataset))


def shard_index(wildcards):
    return int(wildcards.shard)


def dataset_shards(wildcards):
    return num_shards(wildcards.dataset)


def model_folder(wildcards):
    return f"results/models/{wildcards.encoder}/{wildcards.trainset}/{wildcards.system}/seed{wildcards.seed}/model"


def base_model(wildcards):
    """The untrained encoder, whose pooled embeddings a frozen encoder's systems share."""
    return f"results/models/{wildcards.encoder}/none/zeroshot/seed0/model"


def train_inputs(wildcards):
    # the untrained encoder first: for a hub encoder, init_model is what downloads it (rules/train.smk)
    inputs = {"dataset": dataset_folder(wildcards.trainset), "base_model": base_model(wildcards)}
    corpus = "corpus.train" if DATASETS[wildcards.trainset].has_own_corpus("train") else "corpus"
    shards = range(num_shards(wildcards.trainset))
    if FROZEN:
        inputs["pooled_queries"] = f"results/pooled/{wildcards.encoder}/{wildcards.trainset}/queries-train.npz"
        inputs["pooled_corpus"] = [
            f"results/pooled/{wildcards.encoder}/{wildcards.trainset}/{corpus}-{shard}.npz" for shard in shards
        ]
    elif PARTIAL:
        inputs["prefix_queries"] = prefix_folder(wildcards.encoder, wildcards.trainset, "queries-train")
        inputs["prefix_corpus"] = [prefix_folder(wildcards.encoder, wildcards.trainset, f"{corpus}-{shard}") for shard in shards]
    return inputs


def each_system(pattern, wildcards=None):
    """``pattern`` (a path with the {system} wildcard) for every system one job handles: all systems of
    the study, or the untrained encoder alone (training set ``none``). With ``wildcards`` the other
    wildcards are filled in."""
    names = evaluated_systems(wildcards) if wildcards is not None else systems()
    paths = [pattern.replace("{system}", name) for name in names]
    return [path.format(**wildcards) for path in paths] if wildcards is not None else paths


def frozen_train_configs(wildcards):
    """The configuration of every system trained in one job on a frozen encoder's pooled cache."""
    return [system_config(wildcards.encoder, system, int(wildcards.seed)) for system in systems()]


def prefix_folder(encoder, dataset, part):
    """The cached states entering the top ``train_layers`` layers of ``encoder``, for a dataset's
    queries (``queries-<split>``) or corpus shard (``corpus-<shard>``)."""
    return f"results/prefix/{encoder}/top{TRAIN_LAYERS}/{dataset}/{part}"


def prefix_corpus_shard(wildcards):
    return prefix_folder(wildcards.encoder, wildcards.testset, f"corpus-{wildcards.shard}")


def search_inputs(wildcards):
    """The model(s), the test set, and its corpus: the encoded shards of a trained encoder, or (frozen
    encoder: one job for every system of an encoder, training set and seed) the pooled shards, which
    the search job routes itself."""
    shards = range(num_shards(wildcards.testset))
    if FROZEN:
        pooled = f"results/pooled/{wildcards.encoder}/{wildcards.testset}"
        return {"models": each_system(f"results/models/{MODEL}/model", wildcards),
                "dataset": dataset_folder(wildcards.testset),
                "pooled": f"{pooled}/queries-test.npz",
                "pooled_corpus": [f"{pooled}/corpus-{shard}.npz" for shard in shards]}
    inputs = {"models": [model_folder(wildcards)], "dataset": dataset_folder(wildcards.testset),
              "corpus": [f"{ENCODED}/corpus/{shard}".format(**wildcards) for shard in shards]}
    if PARTIAL:  # the queries run through the trained top layers from their cached prefix states
        inputs["prefix"] = prefix_folder(wildcards.encoder, wildcards.testset, "queries-test")
    return inputs


def search_params(wildcards):
    """Per model of the job (in the order of its outputs): its poolings and its run tag."""
    names = evaluated_systems(wildcards) if FROZEN else [wildcards.system]
    return [{"poolings": list(poolings(name)), "tag": search_tag({**wildcards, "system": name})} for name in names]


def encoded_corpus(model, testset):
    """The folders holding a model's routed corpus of ``testset`` (``<pooling>.npz`` in each shard
    folder): its shard folders, or the search job's ``corpus`` folder of shards (frozen encoder)."""
    folder = f"{ENCODED}/corpus".format(**model, testset=testset)
    return [folder] if FROZEN else [f"{folder}/{shard}" for shard in range(num_shards(testset))]


def testset_shards(wildcards):
    return num_shards(wildcards.testset)


def search_tag(wildcards):
    return "{encoder}-{trainset}-{system}-seed{seed}".format(**dict(wildcards))


def evaluation_datasets(wildcards):
    return [dataset_folder(t) for t in testsets(wildcards.trainset)]


def system_poolings(wildcards):
    return list(poolings(wildcards.system))


def evaluated_systems(wildcards):
    return ["zeroshot"] if wildcards.trainset == "none" else systems()


def evaluation_inputs(wildcards):
    """The runs of every system of one encoder, training set and seed, on each of its test sets."""
    return [
        f"results/runs/{MODEL}/{testset}".format(**wildcards, system=system)
        for system in evaluated_systems(wildcards)
        for testset in testsets(wildcards.trainset)
    ]


def evaluation_params(wildcards):
    """For each evaluated model (in the order of the rule's outputs): its runs and how to score them."""
    sets = testsets(wildcards.trainset)
    return [
        {
            "system": system,
            "poolings": list(poolings(system)),
            "runs": [f"results/runs/{MODEL}/{t}".format(**wildcards, system=system) for t in sets],
            "testsets": sets,
            "qrels": [f"{dataset_folder(t)}/qrels/test.tsv" for t in sets],
            "thresholds": [DATASETS[t].relevance_threshold for t in sets],
            "drop_self_hits": [DATASETS[t].drop_self_hits for t in sets],
        }
        for system in evaluated_systems(wildcards)
    ]


def evaluations():
    return [f"results/eval/{MODEL}.json".format(**m) for m in models()]


def training_logs():
    return [f"results/models/{MODEL}/train_log.jsonl".format(**m) for m in models() if m["system"] != "zeroshot"]


def final_outputs():
    """Everything the study reports: evaluations, training logs, tables, figures and the paper."""
    outputs = evaluations() + training_logs() + ["results/analysis/significance.json"]
    outputs.append("results/analysis/verdicts.json")  # rules/verdicts.smk
    outputs += expand("results/analysis/tables/{table}.tex", table=PAPER_TABLES)
    outputs += expand("results/analysis/figures/{figure}.png", figure=PAPER_FIGURES)
    if config.get("paper", {}).get("build", True):
        outputs.append("results/paper/main.pdf")
    return outputs


# ---- analysis inputs: every evaluation, routing and training log, with the keys that name it ----


def evaluation_records():
    """(path, keys) for every (model, test set, pooling) of the study."""
    return [
        (f"results/eval/{MODEL}.json".format(**m), {**m, "testset": t, "pooling": p})
        for m in models()
        for t in testsets(m["trainset"])
        for p in poolings(m["system"])
    ]


def in_domain_pairs():
    return [[trainset, testset] for trainset, tests in config["in_domain"].items() for testset in tests]


def routing_records():
    """(keys, queries folder, corpus shard folders) for every model with a gate, per test set and pooling."""
    return [
        ({**m, "testset": t, "pooling": p},
         f"{ENCODED}/queries".format(**m, testset=t),
         encoded_corpus(m, t))
        for m in models()
        if variant_of(m["system"]).gated
        for t in testsets(m["trainset"])
        for p in poolings(m["system"])
    ]


def tsne_panels():
    """The t-SNE panels: FT, then the configured SB-MoE system, for one trained model and test set."""
    tsne = config["analysis"]["tsne"]
    panels = []
    for system, pooling in (("finetune", "none"), (tsne["system"], tsne.get("pooling", "top1"))):
        model = dict(encoder=tsne["encoder"], trainset=tsne["trainset"], system=system, seed=tsne["seed"])
        panels.append(({**model, "testset": tsne["testset"], "pooling": pooling},
                       f"results/runs/{MODEL}/{tsne['testset']}".format(**model),
                       f"{ENCODED}/queries".format(**model, testset=tsne["testset"]),
                       encoded_corpus(model, tsne["testset"])))
    return panels


def curve_records():
    """Training logs plotted as curves: every system of the first encoder and seed on one training set."""
    trainset = config["analysis"].get("curves", next(iter(config["in_domain"])))
    encoder, seed = next(iter(config["encoders"])), config["seeds"][0]
    return [
        (dict(encoder=encoder, trainset=trainset, system=system, seed=seed),
         f"results/models/{MODEL}/train_log.jsonl".format(encoder=encoder, trainset=trainset, system=system, seed=seed))
        for system in systems()
    ]


def zero_shot_trainset():
    return next(iter(config["zero_shot"]))


DATASET_LABELS = {name: spec.label for name, spec in DATASETS.items()}
# The benchmark each dataset's test split comes from (None: a test collection of its own), for the
# paper's wording ("BEIR test sets" only for BEIR's).
DATASET_BENCHMARKS = {name: benchmark(spec) for name, spec in DATASETS.items()}


# ---- routing over whole retrievers (config["routing"], rules/routing.smk) ----

ROUTING_CONFIG = config.get("routing") or {}
ROUTED_SETS = routing_trainsets(config) if ROUTING_CONFIG else []
ROUTING_ENCODER = ROUTING_CONFIG.get("encoder")
ROUTING_EXPERTS = ROUTING_CONFIG.get("experts") or [BM25, "zeroshot"]
ROUTING_SEED = ROUTING_CONFIG.get("seed", config["seeds"][0])
ROUTER = "results/routing/{encoder}/{trainset}"


def expert_model(name, trainset):
    """The model (as wildcards) and pooling of a dense expert; the untrained encoder's trainset is 'none'."""
    system, pooling = parse_expert(name)
    if system == "zeroshot":
        return dict(encoder=ROUTING_ENCODER, trainset="none", system="zeroshot", seed=0), pooling
    return dict(encoder=ROUTING_ENCODER, trainset=trainset, system=system, seed=ROUTING_SEED), pooling


def expert_runs(trainset, dataset, split):
    """(folder, file) of each expert's run on a split of a dataset, in the order of the experts."""
    found = []
    for name in ROUTING_EXPERTS:
        if name == BM25:
            found.append((f"results/bm25/{dataset}/runs", f"{split}.trec"))
            continue
        model, pooling = expert_model(name, trainset)
        if split == "test":
            folder = f"results/runs/{MODEL}/{dataset}".format(**model)
        else:
            folder = f"results/routing/dense/{MODEL}/{dataset}/{split}".format(**model)
        found.append((folder, f"{pooling}.trec"))
    return found


def bm25_splits(wildcards):
    """The splits BM25 runs on for a dataset: test where it is a test set, the router's split where
    it is a routed training set."""
    splits = []
    if any(wildcards.dataset in testsets(t) for t in ROUTED_SETS):
        splits.append("test")
    if wildcards.dataset in ROUTED_SETS:
        splits.append(routing_split(config, wildcards.dataset))
    return splits


def split_search_inputs(wildcards):
    """A dense expert on a held-out split: its model, the queries of the split, and the corpus (the
    pooled shards of a frozen encoder, else the model's encoded test corpus)."""
    inputs = {"models": [model_folder(wildcards)], "dataset": dataset_folder(wildcards.dataset)}
    shards = range(num_shards(wildcards.dataset))
    if FROZEN:
        pooled = f"results/pooled/{wildcards.encoder}/{wildcards.dataset}"
        inputs["pooled"] = f"{pooled}/queries-{wildcards.split}.npz"
        inputs["pooled_corpus"] = [f"{pooled}/corpus-{shard}.npz" for shard in shards]
    else:
        encoded = f"results/encoded/{MODEL}/{wildcards.dataset}/corpus".format(**wildcards)
        inputs["corpus"] = [f"{encoded}/{shard}" for shard in shards]
    return inputs


def split_poolings(wildcards):
    return list(poolings(wildcards.system))


def split_search_params(wildcards):
    """The search script's settings of the one model of a held-out split search: poolings and run tag."""
    return [{"poolings": split_poolings(wildcards),
             "tag": "{encoder}-{trainset}-{system}-seed{seed}-{split}".format(**wildcards)}]


def expert_inputs(trainset, dataset, split):
    """Everything the router reads on one split: the experts' run folders, the base encoder's pooled
    queries and the dataset folder."""
    return {
        "runs": [folder for folder, _ in expert_runs(trainset, dataset, split)],
        "queries": f"results/pooled/{ROUTING_ENCODER}/{dataset}/queries-{split}.npz",
        "dataset": dataset_folder(dataset),
    }


def expert_params(trainset, dataset, split):
    """The router's description of one split (sbmoe.selection.routing.ExpertInputs)."""
    return {
        "runs": [f"{folder}/{name}" for folder, name in expert_runs(trainset, dataset, split)],
        "queries": f"results/pooled/{ROUTING_ENCODER}/{dataset}/queries-{split}.npz",
        "dataset": dataset_folder(dataset),
        "split": split,
        "relevance_threshold": DATASETS[dataset].relevance_threshold,
        "drop_self_hits": DATASETS[dataset].drop_self_hits,
    }


def router_inputs(wildcards):
    split = routing_split(config, wildcards.trainset)
    found = expert_inputs(wildcards.trainset, wildcards.trainset, split)
    return {"runs": found["runs"], "queries": found["queries"], "dataset": found["dataset"]}


def router_params(wildcards):
    return expert_params(wildcards.trainset, wildcards.trainset, routing_split(config, wildcards.trainset))


def route_inputs(wildcards):
    found = {"router": f"{ROUTER}/router".format(**wildcards), "runs": [], "queries": [], "datasets": []}
    for testset in testsets(wildcards.trainset):
        split = expert_inputs(wildcards.trainset, testset, "test")
        found["runs"] += split["runs"]
        found["queries"].append(split["queries"])
        found["datasets"].append(split["dataset"])
    return found


def route_params(wildcards):
    return {testset: expert_params(wildcards.trainset, testset, "test") for testset in testsets(wildcards.trainset)}


def router_records():
    """(trainset, evaluation JSON, choices JSON) of every routed training set."""
    return [
        (trainset, f"{ROUTER}/eval.json".format(encoder=ROUTING_ENCODER, trainset=trainset),
         f"{ROUTER}/choices.json".format(encoder=ROUTING_ENCODER, trainset=trainset))
        for trainset in ROUTED_SETS
    ]


def router_pairs():
    return [[trainset, testset] for trainset in ROUTED_SETS for testset in testsets(trainset)]


def routing_macro_inputs(wildcards):
    if not ROUTED_SETS:
        return {}
    return {"routing": "results/analysis/tables/routing.csv", "routing_figure": "results/analysis/figures/routing.json"}
