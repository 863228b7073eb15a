"""The path layout: every artefact's template, filled in part (a rule's output pattern) or in full."""

from __future__ import annotations

import string

import pytest

from sbmoe.pipeline import layout

TINY = {"encoder": "tiny", "trainset": "scifact", "system": "sbmoe-paper-e3", "seed": 1}


def fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_fill_sets_the_given_fields_and_keeps_the_others_as_wildcards():
    assert layout.fill("a/{x}/{y}", x=1) == "a/1/{y}"
    assert layout.fill("a/{x}/{y}", {"y": "b", "unused": 3}) == "a/{x}/b"
    assert layout.fill("a/{x}/{y}", {"x": "k"}, x="m") == "a/m/{y}"  # keywords win over the mapping


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (layout.dataset(), "resources/datasets/{dataset}"),
        (layout.model(), "results/models/{encoder}/{trainset}/{system}/seed{seed}/model"),
        (layout.train_log(), "results/models/{encoder}/{trainset}/{system}/seed{seed}/train_log.jsonl"),
        (layout.untrained_model(), "results/models/{encoder}/none/zeroshot/seed0/model"),
        (layout.pooled(part=layout.queries_part()), "results/pooled/{encoder}/{dataset}/queries-{split}.npz"),
        (layout.pooled(part=layout.corpus_part()), "results/pooled/{encoder}/{dataset}/{corpus}-{shard}.npz"),
        (layout.encoded("queries"), "results/encoded/{encoder}/{trainset}/{system}/seed{seed}/{testset}/queries"),
        (layout.encoded_shard(), "results/encoded/{encoder}/{trainset}/{system}/seed{seed}/{testset}/corpus/{shard}"),
        (layout.runs(), "results/runs/{encoder}/{trainset}/{system}/seed{seed}/{testset}"),
        (layout.evaluation(), "results/eval/{encoder}/{trainset}/{system}/seed{seed}.json"),
        (layout.bm25("index"), "results/bm25/{dataset}/index"),
        (
            layout.split_encoded("corpus"),
            "results/routing/encoded/{encoder}/{trainset}/{system}/seed{seed}/{dataset}/{split}/corpus",
        ),
        (layout.split_runs(), "results/routing/dense/{encoder}/{trainset}/{system}/seed{seed}/{dataset}/{split}"),
        (layout.router("choices.json"), "results/routing/{encoder}/{trainset}/choices.json"),
    ],
)
def test_rule_patterns_keep_every_wildcard(path, expected):
    assert path == expected


def test_a_model_filled_in_full():
    assert layout.model(TINY) == "results/models/tiny/scifact/sbmoe-paper-e3/seed1/model"
    assert layout.runs(TINY, testset="cranfield") == "results/runs/tiny/scifact/sbmoe-paper-e3/seed1/cranfield"
    assert layout.encoded_shard(TINY, testset="scifact", shard=3) == (
        "results/encoded/tiny/scifact/sbmoe-paper-e3/seed1/scifact/corpus/3"
    )
    assert layout.evaluation(TINY) == "results/eval/tiny/scifact/sbmoe-paper-e3/seed1.json"
    # the frozen encoder's jobs name every system: the other wildcards stay
    assert layout.model(system="finetune") == "results/models/{encoder}/{trainset}/finetune/seed{seed}/model"


def test_caches_of_the_untrained_encoder():
    assert layout.untrained_model("minilm") == "results/models/minilm/none/zeroshot/seed0/model"
    assert (
        layout.pooled("minilm", "nfcorpus", layout.queries_part("dev"))
        == "results/pooled/minilm/nfcorpus/queries-dev.npz"
    )
    assert layout.pooled("minilm", "nq", layout.corpus_part("corpus.train", 2)) == (
        "results/pooled/minilm/nq/corpus.train-2.npz"
    )
    assert (
        layout.prefix("minilm", 1, "scifact", layout.corpus_part("corpus", 0))
        == "results/prefix/minilm/top1/scifact/corpus-0"
    )


def test_the_split_a_corpus_name_stands_for():
    assert layout.corpus_split("corpus") == "test"
    assert layout.corpus_split("corpus.train") == "train"


def test_logs_and_benchmarks_of_a_job_share_its_name():
    assert layout.log("search_frozen") == "logs/search/{encoder}/{trainset}/seed{seed}/{testset}.log"
    assert layout.benchmark("search_frozen", TINY, testset="nq") == "benchmarks/search/tiny/scifact/seed1/nq.tsv"
    assert layout.log("train", TINY) == "logs/train/tiny/scifact/sbmoe-paper-e3/seed1.log"
    assert (
        layout.benchmark("prefix_corpus", layers=2) == "benchmarks/prefix/{encoder}/top2/{dataset}/{corpus}-{shard}.tsv"
    )
    assert layout.log("pool_queries") == "logs/pooled/{encoder}/{dataset}/queries-{split}.log"
    assert layout.log("init_model", encoder="tiny") == "logs/models/tiny/zeroshot.log"
    assert layout.log("paper") == "logs/paper.log"


def test_each_job_name_is_its_own():
    names = list(layout.JOBS.values())
    assert len(set(names)) == len(names)
    # a job of a trained encoder is named by its model; one on a frozen encoder by its training set and seed
    assert fields(layout.JOBS["train"]) == set(layout.MODEL_KEYS)
    assert fields(layout.JOBS["train_frozen"]) == set(layout.MODEL_KEYS) - {"system"}


def test_analysis_and_paper():
    assert layout.table("in_domain", "csv") == "results/analysis/tables/in_domain.csv"
    assert layout.figure("tsne", "png") == "results/analysis/figures/tsne.png"
    assert layout.SIGNIFICANCE == "results/analysis/significance.json"
    assert layout.MACROS == "results/analysis/macros.tex"
    assert layout.PAPER == "results/paper/main.pdf"
    assert layout.qrels("scifact") == "resources/datasets/scifact/qrels/test.tsv"


def test_a_model_is_named_by_its_four_keys():
    assert fields(layout.MODEL) == set(layout.MODEL_KEYS) == {"encoder", "trainset", "system", "seed"}
    assert set(layout.UNTRAINED) == set(layout.MODEL_KEYS) - {"encoder"}
    # a test set's artefacts of one model are told apart by the test set alone
    assert fields(layout.runs()) == fields(layout.encoded("queries")) == set(layout.MODEL_KEYS) | {"testset"}
