"""The study design of each configuration: systems, models, test sets, shards, job inputs, the targets
of ``rule all`` and the routing over retrievers. The expected values are written out from the
configuration files and the datasets table (workflow/datasets.yaml)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from snakemake.utils import validate

from sbmoe.data.table import load_table
from sbmoe.io.errors import read_yaml
from sbmoe.pipeline.design import Study

ROOT = Path(__file__).resolve().parents[1]
TABLE = load_table(ROOT / "workflow" / "datasets.yaml")


def config_of(name: str) -> dict:
    """A study configuration as the workflow reads it: validated, the schema's defaults filled in."""
    config = read_yaml(ROOT / name, "a study configuration")
    validate(config, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"))
    return config


def study_of(name: str, **changes) -> Study:
    config = copy.deepcopy(config_of(name))
    config["training"].update(changes)
    return Study(config, TABLE)


@pytest.fixture(scope="module")
def ci() -> Study:
    return study_of("config/ci.yaml")


@pytest.fixture(scope="module")
def demo() -> Study:
    return study_of("config/demo.yaml")


@pytest.fixture(scope="module")
def cpu() -> Study:
    return study_of("config/cpu-study.yaml")


@pytest.fixture(scope="module")
def full() -> Study:
    return study_of("config.yaml")


CI_SYSTEMS = ["finetune", "adapter-paper", "random-gate-e3", "sbmoe-paper-e3", "sbmoe-learned-e3"]
FULL_SYSTEMS = [
    "finetune",
    "random-gate-e6",
    "sbmoe-paper-e3",
    "sbmoe-paper-e6",
    "sbmoe-paper-e9",
    "sbmoe-paper-e12",
    "sbmoe-learned-e6",
    "adapter-paper",
    "regular-moe-e4-k2",
]
FULL_ENCODERS = ["tinybert", "bert-small", "bert-base", "contriever"]
MSMARCO_TESTS = [
    "msmarco",
    "trec-dl-2019",
    "trec-dl-2020",
    "trec-covid",
    "nfcorpus",
    "nq",
    "hotpotqa",
    "fiqa",
    "arguana",
    "webis-touche2020",
    "quora",
    "dbpedia-entity",
    "scidocs",
    "fever",
    "climate-fever",
    "scifact",
]


# ---- systems, models, test sets and shards ----


def test_systems_of_each_study(ci, demo, cpu, full):
    assert ci.systems == CI_SYSTEMS
    assert demo.systems == [
        "finetune",
        "adapter-paper",
        "random-gate-e3",
        "random-gate-e6",
        "sbmoe-paper-e3",
        "sbmoe-paper-e6",
        "sbmoe-learned-e3",
        "sbmoe-learned-e6",
    ]
    assert cpu.systems == [
        "finetune",
        "sbmoe-paper-e6",
        "sbmoe-learned-e6",
        "regular-moe-e4-k2",
    ]
    assert full.systems == FULL_SYSTEMS


def test_how_much_of_the_encoder_each_study_trains(ci, demo, cpu, full):
    assert (ci.frozen, ci.partial) == (demo.frozen, demo.partial) == (True, False)
    assert (cpu.frozen, cpu.partial, cpu.train_layers) == (False, True, 1)
    assert (full.frozen, full.partial, full.train_layers) == (False, False, "all")


def test_test_sets_in_domain_first_then_zero_shot(ci, demo, full):
    assert ci.testsets("scifact") == ["scifact", "cranfield"]
    assert demo.testsets("nfcorpus") == ["nfcorpus"]
    assert demo.all_testsets() == ["scifact", "nfcorpus", "cranfield"]
    assert demo.testsets("none") == demo.all_testsets()  # the untrained encoder is tested on every set
    assert full.testsets("msmarco") == MSMARCO_TESTS
    assert full.testsets("nq") == ["nq"]
    assert full.all_datasets() == [
        "msmarco",
        "nq",
        "hotpotqa",
        "political-science",
        "computer-science",
        "trec-dl-2019",
        "trec-dl-2020",
        "trec-covid",
        "nfcorpus",
        "fiqa",
        "arguana",
        "webis-touche2020",
        "quora",
        "dbpedia-entity",
        "scidocs",
        "fever",
        "climate-fever",
        "scifact",
    ]


def test_models_one_per_encoder_trainset_system_and_seed(ci, full):
    assert ci.models() == [
        {"encoder": "tiny", "trainset": "scifact", "system": system, "seed": seed}
        for system in CI_SYSTEMS
        for seed in (1, 2)
    ]
    trainsets = ["msmarco", "nq", "hotpotqa", "political-science", "computer-science"]
    assert full.models() == [
        {"encoder": e, "trainset": t, "system": s, "seed": 42}
        for e in FULL_ENCODERS
        for t in trainsets
        for s in FULL_SYSTEMS
    ]


def test_the_untrained_encoders_are_models_where_the_study_says_zeroshot():
    config = copy.deepcopy(config_of("config/ci.yaml"))
    config["zeroshot"] = True
    models = Study(config, TABLE).models()
    assert models[-1] == {"encoder": "tiny", "trainset": "none", "system": "zeroshot", "seed": 0}
    assert len(models) == 11


def test_corpus_shards_and_cores(demo, cpu, full):
    assert [demo.num_shards(name) for name in ("scifact", "nfcorpus", "cranfield")] == [4, 3, 2]
    assert [cpu.num_shards(name) for name in ("scifact", "cranfield", "nfcorpus")] == [2, 2, 2]
    assert [full.num_shards(name) for name in ("msmarco", "nq", "scifact")] == [16, 4, 1]
    assert demo.cores_per_shard(16, "scifact") == 4
    assert demo.cores_per_shard(2, "scifact") == 1  # never fewer than one
    assert demo.cores_per_shard(None, "scifact") == 8  # a cluster job's own allocation


# ---- a model's settings ----


def test_a_system_takes_its_encoder_training_settings_and_its_overrides(cpu):
    [config] = cpu.train_configs(
        {"encoder": "minilm", "trainset": "scifact", "system": "regular-moe-e4-k2", "seed": "1"}
    )
    assert config["seed"] == 1
    assert config["encoder"] == {
        "name_or_path": "embedded:all-MiniLM-L6-v2",
        "pooling": "mean",
        "normalize": True,
        "query_max_length": 256,
        "doc_max_length": 256,
        "lowercase": False,
    }
    assert config["model"]["variant"] == "regular-moe"
    training = config["training"]
    assert (training["encoder_lr"], training["moe_lr"], training["epochs"], training["temperature"]) == (
        2e-5,
        1e-4,
        6,
        0.05,
    )
    assert training["train_layers"] == 1


def test_a_frozen_encoder_trains_every_system_in_one_job(ci):
    configs = ci.train_configs({"encoder": "tiny", "trainset": "scifact", "seed": "2"})
    assert [c["model"] for c in configs] == [
        {"variant": "finetune"},
        {"variant": "adapter", "num_experts": 1, "combination": "paper"},
        {"variant": "random-gate", "combination": "paper", "num_experts": 3},  # the schema's default combination
        {"variant": "sbmoe", "combination": "paper", "num_experts": 3},
        {"variant": "sbmoe", "combination": "learned", "num_experts": 3},
    ]
    assert {c["seed"] for c in configs} == {2}
    assert {(c["training"]["epochs"], c["training"]["temperature"]) for c in configs} == {(3, 0.05)}


def test_the_untrained_encoder_is_told_nothing_about_training(ci, full):
    config = ci.untrained_config({"encoder": "tiny"})
    assert config == {
        "encoder": {
            "name_or_path": "random:tiny-bert",
            "pooling": "mean",
            "normalize": True,
            "query_max_length": 64,
            "doc_max_length": 128,
            "lowercase": False,
        },
        "model": {"variant": "finetune"},
        "seed": 0,
    }
    assert "training" not in full.untrained_config({"encoder": "contriever"})


# ---- job inputs ----


def test_training_reads_the_frozen_encoders_pooled_cache(ci):
    assert ci.train_inputs({"encoder": "tiny", "trainset": "scifact"}) == {
        "dataset": "resources/datasets/scifact",
        "base_model": "results/models/tiny/none/zeroshot/seed0/model",
        "pooled_queries": "results/pooled/tiny/scifact/queries-train.npz",
        "pooled_corpus": ["results/pooled/tiny/scifact/corpus-0.npz"],
    }


def test_training_on_a_split_with_its_own_corpus_reads_that_corpus():
    study = study_of("config.yaml", train_layers=0)
    inputs = study.train_inputs({"encoder": "bert-base", "trainset": "nq"})
    assert inputs["pooled_corpus"] == [f"results/pooled/bert-base/nq/corpus.train-{shard}.npz" for shard in range(4)]


def test_training_the_top_layer_reads_the_prefix_cache(cpu):
    assert cpu.train_inputs({"encoder": "minilm", "trainset": "scifact", "system": "finetune", "seed": "1"}) == {
        "dataset": "resources/datasets/scifact",
        "base_model": "results/models/minilm/none/zeroshot/seed0/model",
        "prefix_queries": "results/prefix/minilm/top1/scifact/queries-train",
        "prefix_corpus": ["results/prefix/minilm/top1/scifact/corpus-0", "results/prefix/minilm/top1/scifact/corpus-1"],
    }


def test_training_every_layer_reads_the_dataset_and_the_encoder(full):
    assert full.train_inputs({"encoder": "bert-base", "trainset": "nq", "system": "finetune", "seed": "42"}) == {
        "dataset": "resources/datasets/nq",
        "base_model": "results/models/bert-base/none/zeroshot/seed0/model",
    }


def test_a_frozen_encoders_search_routes_the_pooled_cache_for_every_system(ci):
    wildcards = {"encoder": "tiny", "trainset": "scifact", "seed": "1", "testset": "cranfield"}
    assert ci.search_inputs(wildcards) == {
        "models": [f"results/models/tiny/scifact/{system}/seed1/model" for system in CI_SYSTEMS],
        "dataset": "resources/datasets/cranfield",
        "pooled": "results/pooled/tiny/cranfield/queries-test.npz",
        "pooled_corpus": ["results/pooled/tiny/cranfield/corpus-0.npz"],
    }
    params = ci.search_params(wildcards)
    assert [p["poolings"] for p in params] == [["none"], ["none"], ["top1"], ["top1", "all"], ["top1", "all"]]
    assert params[0]["tag"] == "tiny-scifact-finetune-seed1"


def test_a_trained_encoders_search_reads_its_encoded_shards(cpu):
    wildcards = {
        "encoder": "minilm",
        "trainset": "scifact",
        "system": "sbmoe-paper-e6",
        "seed": "1",
        "testset": "cranfield",
    }
    model = "minilm/scifact/sbmoe-paper-e6/seed1"
    assert cpu.search_inputs(wildcards) == {
        "models": [f"results/models/{model}/model"],
        "dataset": "resources/datasets/cranfield",
        "corpus": [f"results/encoded/{model}/cranfield/corpus/0", f"results/encoded/{model}/cranfield/corpus/1"],
        "prefix": "results/prefix/minilm/top1/cranfield/queries-test",
    }
    assert cpu.search_params(wildcards) == [{"poolings": ["top1", "all"], "tag": "minilm-scifact-sbmoe-paper-e6-seed1"}]


def test_evaluation_scores_each_run_with_its_test_sets_conventions(full):
    wildcards = {"encoder": "tinybert", "trainset": "msmarco", "seed": "42"}
    runs = full.evaluation_inputs(wildcards)
    assert len(runs) == len(FULL_SYSTEMS) * len(MSMARCO_TESTS)
    assert runs[0] == "results/runs/tinybert/msmarco/finetune/seed42/msmarco"
    [first, *_] = full.evaluation_params(wildcards)
    assert first["system"] == "finetune" and first["poolings"] == ["none"]
    assert first["qrels"][1] == "resources/datasets/trec-dl-2019/qrels/test.tsv"
    assert first["thresholds"] == [1, 2, 2] + [1] * 13  # TREC DL counts grade 2 as relevant
    assert [t for t, drop in zip(first["testsets"], first["drop_self_hits"]) if drop] == ["arguana", "quora"]


def test_the_corpus_folders_the_analysis_reads(ci, cpu):
    model = {"encoder": "tiny", "trainset": "scifact", "system": "sbmoe-paper-e3", "seed": 1}
    assert ci.encoded_corpus(model, "scifact") == ["results/encoded/tiny/scifact/sbmoe-paper-e3/seed1/scifact/corpus"]
    model = {"encoder": "minilm", "trainset": "scifact", "system": "sbmoe-paper-e6", "seed": 1}
    assert cpu.encoded_corpus(model, "scifact") == [
        f"results/encoded/minilm/scifact/sbmoe-paper-e6/seed1/scifact/corpus/{shard}" for shard in (0, 1)
    ]


# ---- targets ----


def test_the_ci_study_ends_with_its_evaluations_logs_tables_figures_and_paper(ci):
    models = [f"tiny/scifact/{system}/seed{seed}" for system in CI_SYSTEMS for seed in (1, 2)]
    tables = ["dataset_stats", "in_domain", "zero_shot", "reproduction", "experts", "routing"]
    figures = ["expert_count", "tsne", "training_curves", "routing"]
    assert ci.targets() == (
        [f"results/eval/{m}.json" for m in models]
        + [f"results/models/{m}/train_log.jsonl" for m in models]
        + ["results/analysis/significance.json", "results/analysis/verdicts.json"]
        + [f"results/analysis/tables/{t}.tex" for t in tables]
        + [f"results/analysis/figures/{f}.png" for f in figures]
        + ["results/paper/main.pdf"]
    )


def test_a_study_without_routing_or_paper_leaves_them_out(cpu, full):
    assert cpu.paper_tables() == ["dataset_stats", "in_domain", "zero_shot", "reproduction", "experts"]
    assert cpu.paper_figures() == ["expert_count", "tsne", "training_curves"]
    # evaluations and training logs of 4 encoders x 5 training sets x 9 systems, significance, verdicts,
    # 6 tables and 4 figures (routing among them), the paper
    assert len(full.targets()) == 2 * 4 * 5 * 9 + 2 + 6 + 4 + 1
    config = copy.deepcopy(config_of("config/cpu-study.yaml"))
    config["paper"]["build"] = False
    assert "results/paper/main.pdf" not in Study(config, TABLE).targets()


def test_the_records_the_analysis_reads(ci, full):
    records = ci.evaluation_records()
    # (2 + 2 FT/adapter + 2 random gate + 2 * 2 * 2 SB-MoE poolings) per test set and seed
    assert len(records) == 2 * 2 * (1 + 1 + 1 + 2 + 2)
    assert records[0] == (
        "results/eval/tiny/scifact/finetune/seed1.json",
        {
            "encoder": "tiny",
            "trainset": "scifact",
            "system": "finetune",
            "seed": 1,
            "testset": "scifact",
            "pooling": "none",
        },
    )
    # per encoder: 20 test sets of the training sets, 14 (system, pooling) pairs
    assert len(full.evaluation_records()) == 4 * 20 * 14
    gated = ci.routing_records()
    assert {keys["system"] for keys, _, _ in gated} == {"random-gate-e3", "sbmoe-paper-e3", "sbmoe-learned-e3"}
    panels = ci.tsne_panels()
    assert [keys["system"] for keys, _, _, _ in panels] == ["finetune", "sbmoe-learned-e3"]
    assert panels[1][1] == "results/runs/tiny/scifact/sbmoe-learned-e3/seed1/scifact"
    assert ci.curve_records()[1] == (
        {"encoder": "tiny", "trainset": "scifact", "system": "adapter-paper", "seed": 1},
        "results/models/tiny/scifact/adapter-paper/seed1/train_log.jsonl",
    )
    assert full.in_domain_pairs()[:3] == [
        ["msmarco", "msmarco"],
        ["msmarco", "trec-dl-2019"],
        ["msmarco", "trec-dl-2020"],
    ]
    assert full.zero_shot_trainset() == "msmarco"
    assert ci.dataset_labels()["trec-dl-2019"] == "DL19"


# ---- routing over whole retrievers ----


def test_the_ci_router_and_its_experts(ci):
    routing = ci.routing
    assert routing.trainsets == ["scifact"]
    assert routing.experts == ["bm25", "zeroshot", "sbmoe-learned-e3/top1"]
    assert routing.split("scifact") == "valid"
    assert routing.expert_runs("scifact", "scifact", "valid") == [
        ("results/bm25/scifact/runs", "valid.trec"),
        ("results/routing/dense/tiny/none/zeroshot/seed0/scifact/valid", "none.trec"),
        ("results/routing/dense/tiny/scifact/sbmoe-learned-e3/seed1/scifact/valid", "top1.trec"),
    ]
    assert routing.expert_runs("scifact", "cranfield", "test")[1:] == [
        ("results/runs/tiny/none/zeroshot/seed0/cranfield", "none.trec"),
        ("results/runs/tiny/scifact/sbmoe-learned-e3/seed1/cranfield", "top1.trec"),
    ]
    assert routing.bm25_splits({"dataset": "scifact"}) == ["test", "valid"]
    assert routing.bm25_splits({"dataset": "cranfield"}) == ["test"]
    assert routing.router_inputs({"encoder": "tiny", "trainset": "scifact"})["queries"] == (
        "results/pooled/tiny/scifact/queries-valid.npz"
    )
    params = routing.route_params({"encoder": "tiny", "trainset": "scifact"})
    assert list(params) == ["scifact", "cranfield"]
    assert params["cranfield"]["runs"][0] == "results/bm25/cranfield/runs/test.trec"
    assert routing.router_records() == [
        ("scifact", "results/routing/tiny/scifact/eval.json", "results/routing/tiny/scifact/choices.json")
    ]
    assert routing.router_pairs() == [["scifact", "scifact"], ["scifact", "cranfield"]]


def test_the_demo_routes_both_training_sets_nfcorpus_on_its_dev_split(demo):
    routing = demo.routing
    assert routing.trainsets == ["scifact", "nfcorpus"]
    assert [routing.split(t) for t in routing.trainsets] == ["valid", "dev"]
    assert routing.bm25_splits({"dataset": "nfcorpus"}) == ["test", "dev"]
    assert routing.expert_runs("nfcorpus", "nfcorpus", "dev")[2] == (
        "results/routing/dense/minilm/nfcorpus/sbmoe-learned-e6/seed1/nfcorpus/dev",
        "top1.trec",
    )
    wildcards = {
        "encoder": "minilm",
        "trainset": "nfcorpus",
        "system": "sbmoe-learned-e6",
        "seed": "1",
        "dataset": "nfcorpus",
        "split": "dev",
    }
    assert routing.split_search_inputs(wildcards) == {
        "models": ["results/models/minilm/nfcorpus/sbmoe-learned-e6/seed1/model"],
        "dataset": "resources/datasets/nfcorpus",
        "pooled": "results/pooled/minilm/nfcorpus/queries-dev.npz",
        "pooled_corpus": [f"results/pooled/minilm/nfcorpus/corpus-{shard}.npz" for shard in range(3)],
    }
    assert routing.split_search_params(wildcards) == [
        {"poolings": ["top1", "all"], "tag": "minilm-nfcorpus-sbmoe-learned-e6-seed1-dev"}
    ]
    assert routing.macro_inputs() == {
        "routing": "results/analysis/tables/routing.csv",
        "routing_figure": "results/analysis/figures/routing.json",
    }


def test_a_study_without_routing_trains_no_router(cpu):
    assert cpu.routing.trainsets == []
    assert cpu.routing.macro_inputs() == {}
    assert cpu.routing.router_records() == []
    assert cpu.routing.bm25_splits({"dataset": "scifact"}) == []


def test_the_full_study_routes_the_training_sets_it_names(full):
    routing = full.routing
    assert routing.trainsets == ["msmarco", "hotpotqa", "political-science", "computer-science"]
    assert routing.expert_model("finetune", "hotpotqa") == (
        {"encoder": "contriever", "trainset": "hotpotqa", "system": "finetune", "seed": 42},
        "none",
    )
    assert routing.expert_runs("msmarco", "nq", "test") == [
        ("results/bm25/nq/runs", "test.trec"),
        ("results/runs/contriever/msmarco/finetune/seed42/nq", "none.trec"),
        ("results/runs/contriever/msmarco/sbmoe-paper-e6/seed42/nq", "top1.trec"),
    ]
    # NQ is routed only as a zero-shot test set of MSMARCO's router
    assert [routing.bm25_splits({"dataset": name}) for name in ("msmarco", "nq", "computer-science")] == [
        ["test", "valid"],
        ["test"],
        ["test", "valid"],
    ]
    assert len(routing.router_pairs()) == len(MSMARCO_TESTS) + 3


def test_routing_experts_default_to_bm25_and_the_untrained_encoder_of_the_chosen_seed():
    config = copy.deepcopy(config_of("config/ci.yaml"))
    config["routing"] = {"encoder": "tiny", "seed": 2, "trainsets": ["scifact"], "splits": {"scifact": "valid"}}
    validate(config, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"))
    routing = Study(config, TABLE).routing
    assert routing.experts == ["bm25", "zeroshot"]
    assert routing.expert_model("finetune", "scifact") == (
        {"encoder": "tiny", "trainset": "scifact", "system": "finetune", "seed": 2},
        "none",
    )
