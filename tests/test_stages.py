"""The stages end to end on the tiny collection (train, init, pool, encode, search, evaluate), what
they leave behind on failure, and (slow) zero-shot all-MiniLM-L6-v2 on SciFact."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from sbmoe.io.collection import DataFormatError
from sbmoe.io.encoded import Encoded
from sbmoe.io.errors import InputWarning
from sbmoe.io.runs import read_trec_run
from sbmoe.models.encoder import EMBEDDED_MODEL, EncoderConfig
from sbmoe.models.retriever import ModelConfig, Retriever
from sbmoe.pipeline.stages import encode_stage, evaluate_stage, init_stage, pool_stage, search_stage, train_stage
from sbmoe.training.config import TrainConfig


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _train_config(**overrides):
    values = dict(epochs=2, batch_size=8, encoder_lr=1e-4, moe_lr=1e-2, seed=3)
    values.update(overrides)
    return TrainConfig(**values)


def _model_config(encoder_config, variant="sbmoe", combination="learned", num_experts=3):
    return ModelConfig(encoder=encoder_config(), variant=variant, combination=combination, num_experts=num_experts)


def test_init_pool_encode_search_evaluate(tmp_path, tiny_collection, encoder_config):
    out = tmp_path / "out"
    init_stage(_model_config(encoder_config, "sbmoe", "paper"), out / "model")
    assert sorted(p.name for p in (out / "model").iterdir()) == ["config.json", "moe.pt"]  # the encoder is not copied
    assert json.loads((out / "model" / "config.json").read_text())["encoder_trained"] is False

    # pooled caches of the queries and of the corpus in two shards
    pool_stage(out / "model", tiny_collection, "queries", out / "pooled-queries.npz", split="test", device="cpu")
    for shard in range(2):
        pool_stage(
            out / "model",
            tiny_collection,
            "corpus",
            out / f"pooled-corpus-{shard}.npz",
            shard=shard,
            num_shards=2,
            device="cpu",
        )
    pooled_queries = Encoded.load(out / "pooled-queries.npz")
    assert pooled_queries.ids == [f"q{i}" for i in range(30, 40)]
    assert pooled_queries.embeddings.shape == (10, 32) and (pooled_queries.experts == -1).all()
    shards = [Encoded.load(out / f"pooled-corpus-{s}.npz") for s in range(2)]
    assert [len(s.ids) for s in shards] == [25, 25]
    assert shards[0].ids + shards[1].ids == [f"d{i}" for i in range(40)] + [f"x{i}" for i in range(10)]

    # encoding with and without the pooled cache gives the same embeddings and routing
    poolings = ["top1", "all"]
    for kind, cache in [("queries", "pooled-queries.npz")] + [("corpus", f"pooled-corpus-{s}.npz") for s in range(2)]:
        name = cache.removeprefix("pooled-").removesuffix(".npz")
        shard = int(name[-1]) if kind == "corpus" else 0
        direct = [out / f"{name}-{p}.npz" for p in poolings]
        cached = [out / f"{name}-{p}-cached.npz" for p in poolings]
        encode_stage(
            out / "model",
            tiny_collection,
            kind,
            poolings,
            direct,
            shard=shard,
            num_shards=2 if kind == "corpus" else 1,
            device="cpu",
        )
        encode_stage(out / "model", tiny_collection, kind, poolings, cached, pooled=out / cache, device="cpu")
        for a, b in zip(direct, cached):
            first, second = Encoded.load(a), Encoded.load(b)
            assert first.ids == second.ids
            assert np.array_equal(first.embeddings, second.embeddings)
            assert np.array_equal(first.experts, second.experts) and np.array_equal(first.gate, second.gate)
        top1, full = Encoded.load(direct[0]), Encoded.load(direct[1])
        assert ((top1.gate != 0).sum(axis=1) == 1).all()
        np.testing.assert_allclose(full.gate.sum(axis=1), 1.0, atol=1e-6)

    # search over the two shards equals the model's own encoding and a brute-force ranking
    search_stage(
        out / "queries-top1.npz",
        [out / "corpus-0-top1.npz", out / "corpus-1-top1.npz"],
        out / "run.trec",
        k=5,
        tag="tiny",
        device="cpu",
    )
    run = read_trec_run(out / "run.trec")
    assert set(run) == {f"q{i}" for i in range(30, 40)} and all(len(docs) == 5 for docs in run.values())
    model = Retriever.load(out / "model")
    from sbmoe.io.collection import Collection, document_text

    test = Collection.load(tiny_collection, "test")
    doc_ids = list(test.corpus)
    q = model.encode([test.queries[f"q{i}"] for i in range(30, 40)], "query", progress=False).embeddings
    d = model.encode([document_text(test.corpus[i]) for i in doc_ids], "doc", progress=False).embeddings
    scores = q @ d.T
    for row, qid in enumerate(f"q{i}" for i in range(30, 40)):
        best = [doc_ids[j] for j in np.argsort(-scores[row])[:5]]
        assert set(run[qid]) == set(best)

    result = evaluate_stage(
        out / "run.trec", tiny_collection / "qrels" / "test.tsv", out / "eval.json", metrics=["ndcg@10", "recall@100"]
    )
    saved = json.loads((out / "eval.json").read_text())
    assert saved == json.loads(json.dumps(result))
    assert saved["run"] == str(out / "run.trec") and set(saved["metrics"]) == {"ndcg@10", "recall@100"}
    assert set(saved["per_query"]["ndcg@10"]) == {f"q{i}" for i in range(30, 40)}
    hits = sum(f"d{i}" in run[f"q{i}"] for i in range(30, 40))
    assert saved["metrics"]["recall@100"] == pytest.approx(hits / 10)
    assert not [p for p in _listing(out) if ".tmp" in p or p.startswith(".")]


def test_encode_stage_refuses_a_cache_for_a_trained_encoder(tmp_path, tiny_collection, encoder_config):
    model = Retriever(_model_config(encoder_config, "finetune"))
    model.save(tmp_path / "model")  # encoder_trained defaults to True
    pool_stage(tmp_path / "model", tiny_collection, "queries", tmp_path / "pooled.npz", device="cpu")
    with pytest.raises(ValueError, match="encoder was trained"):
        encode_stage(
            tmp_path / "model",
            tiny_collection,
            "queries",
            ["none"],
            [tmp_path / "q.npz"],
            pooled=tmp_path / "pooled.npz",
            device="cpu",
        )
    with pytest.raises(ValueError, match="outputs"):
        encode_stage(
            tmp_path / "model", tiny_collection, "queries", ["none", "top1"], [tmp_path / "q.npz"], device="cpu"
        )
    assert not (tmp_path / "q.npz").exists()


def test_train_stage_with_and_without_pooled_cache(tmp_path, tiny_collection, encoder_config):
    init_stage(_model_config(encoder_config, "finetune"), tmp_path / "base")
    pool_stage(
        tmp_path / "base", tiny_collection, "queries", tmp_path / "queries-train.npz", split="train", device="cpu"
    )
    pool_stage(tmp_path / "base", tiny_collection, "corpus", tmp_path / "corpus-0.npz", device="cpu")
    config = _train_config(train_layers=0)
    logs = {}
    for name, caches in (("cached", True), ("uncached", False)):
        output, log = tmp_path / name / "model", tmp_path / name / "train_log.jsonl"
        train_stage(
            tiny_collection,
            _model_config(encoder_config),
            config,
            output,
            log,
            device="cpu",
            progress=False,
            pooled_queries=tmp_path / "queries-train.npz" if caches else None,
            pooled_corpus=[tmp_path / "corpus-0.npz"] if caches else None,
        )
        assert sorted(p.name for p in output.iterdir()) == ["config.json", "moe.pt"]  # frozen: no encoder copy
        logs[name] = [json.loads(line) for line in log.read_text().splitlines()]
        assert len(logs[name]) == 2 and logs[name][0]["best"] is True
        assert _listing(tmp_path / name) == ["model", "model/config.json", "model/moe.pt", "train_log.jsonl"]
    for a, b in zip(logs["cached"], logs["uncached"]):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-5) and a["val_loss"] == pytest.approx(
            b["val_loss"], abs=1e-5
        )
    cached = Retriever.load(tmp_path / "cached" / "model")
    uncached = Retriever.load(tmp_path / "uncached" / "model")
    assert cached.config.encoder_trained is False and cached.config.system == "sbmoe-learned-e3"
    for key, value in cached.moe.state_dict().items():
        torch.testing.assert_close(value, uncached.moe.state_dict()[key], atol=1e-5, rtol=0)
    # a frozen, trained model still takes the pooled cache at encoding time
    encode_stage(
        tmp_path / "cached" / "model",
        tiny_collection,
        "corpus",
        ["top1"],
        [tmp_path / "enc-cached.npz"],
        pooled=tmp_path / "corpus-0.npz",
        device="cpu",
    )
    encode_stage(
        tmp_path / "cached" / "model", tiny_collection, "corpus", ["top1"], [tmp_path / "enc.npz"], device="cpu"
    )
    assert np.array_equal(
        Encoded.load(tmp_path / "enc-cached.npz").embeddings, Encoded.load(tmp_path / "enc.npz").embeddings
    )


def test_train_stage_fine_tunes_and_saves_the_encoder(tmp_path, tiny_collection, encoder_config):
    train_stage(
        tiny_collection,
        _model_config(encoder_config, "adapter", "paper"),
        _train_config(epochs=1),
        tmp_path / "model",
        tmp_path / "log.jsonl",
        device="cpu",
        progress=False,
    )
    assert (tmp_path / "model" / "encoder").is_dir()
    model = Retriever.load(tmp_path / "model")
    assert model.config.encoder_trained is True and model.config.system == "adapter-paper"
    base = Retriever(_model_config(encoder_config, "adapter", "paper"))
    texts = ["w1 w2 w3", "w4 w5"]
    assert not np.allclose(
        model.encode(texts, "doc", progress=False).embeddings, base.encode(texts, "doc", progress=False).embeddings
    )


def test_train_stage_leaves_nothing_behind_on_failure(tmp_path, tiny_collection, encoder_config):
    init_stage(_model_config(encoder_config, "finetune"), tmp_path / "base")
    pool_stage(tmp_path / "base", tiny_collection, "queries", tmp_path / "base" / "q.npz", split="train", device="cpu")
    pool_stage(tmp_path / "base", tiny_collection, "corpus", tmp_path / "base" / "c.npz", device="cpu")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ValueError, match="train_layers"):  # a pooled cache for an encoder being trained
        train_stage(
            tiny_collection,
            _model_config(encoder_config),
            _train_config(),
            out / "model",
            out / "log.jsonl",
            device="cpu",
            progress=False,
            pooled_queries=tmp_path / "base" / "q.npz",
            pooled_corpus=[tmp_path / "base" / "c.npz"],
        )
    assert _listing(out) == []
    with pytest.raises(ValueError, match="both"):
        train_stage(
            tiny_collection,
            _model_config(encoder_config),
            _train_config(train_layers=0),
            out / "model",
            out / "log.jsonl",
            device="cpu",
            progress=False,
            pooled_queries=tmp_path / "base" / "q.npz",
        )
    assert _listing(out) == []


def test_evaluate_stage_with_a_bad_run_leaves_nothing(tmp_path, tiny_collection):
    out = tmp_path / "eval"
    out.mkdir()
    bad = tmp_path / "bad.trec"
    bad.write_text("q30 Q0 d30 1 1.0 tag\nq31 Q0 d31 1\n")
    with pytest.raises(DataFormatError, match=r"bad.trec:2:"):
        evaluate_stage(bad, tiny_collection / "qrels" / "test.tsv", out / "eval.json")
    assert _listing(out) == []
    good = tmp_path / "good.trec"
    good.write_text("q30 Q0 d30 1 1.0 tag\n")
    with pytest.raises(DataFormatError, match="missing qrels"):
        evaluate_stage(good, tiny_collection / "qrels" / "nope.tsv", out / "eval.json")
    assert _listing(out) == []
    with pytest.warns(InputWarning, match="9 of the 10 judged queries"):
        result = evaluate_stage(good, tiny_collection / "qrels" / "test.tsv", out / "eval.json", metrics=["mrr@10"])
    assert result["metrics"]["mrr@10"] == pytest.approx(0.1)  # q30 found at rank 1, the nine others missing
    assert _listing(out) == ["eval.json"]


def test_stages_use_the_split_corpus(tmp_path, tiny_collection, encoder_config):
    folder = tmp_path / "nq-like"
    shutil.copytree(tiny_collection, folder)
    with (folder / "corpus.train.jsonl").open("w") as handle:
        for i in range(30):
            handle.write(json.dumps({"_id": f"d{i}", "title": "", "text": f"w{i} w{i + 1}"}) + "\n")
    init_stage(_model_config(encoder_config, "finetune"), tmp_path / "base")
    pool_stage(tmp_path / "base", folder, "corpus", tmp_path / "train.npz", split="train", device="cpu")
    pool_stage(tmp_path / "base", folder, "corpus", tmp_path / "test.npz", split="test", device="cpu")
    assert Encoded.load(tmp_path / "train.npz").ids == [f"d{i}" for i in range(30)]
    assert len(Encoded.load(tmp_path / "test.npz").ids) == 50


@pytest.mark.slow
@pytest.mark.parametrize("name, queries, ndcg", [("scifact", 300, 0.645), ("nfcorpus", 323, 0.317)])
def test_zero_shot_minilm(tmp_path, shared_data, name, queries, ndcg):
    """The embedded all-MiniLM-L6-v2, max length 256, exact search, test split: nDCG@10 0.645 on SciFact
    and 0.317 on NFCorpus (MTEB: 64.51 and 31.59). About 7 and 5 minutes on 2 CPU cores."""
    folder = shared_data / name
    torch.set_num_threads(os.cpu_count() or 1)
    started = time.perf_counter()
    config = ModelConfig(
        encoder=EncoderConfig(EMBEDDED_MODEL, normalize=True, query_max_length=256, doc_max_length=256),
        variant="finetune",
    )
    init_stage(config, tmp_path / "model")
    encode_stage(
        tmp_path / "model", folder, "queries", ["none"], [tmp_path / "queries.npz"], split="test", device="cpu"
    )
    encode_stage(tmp_path / "model", folder, "corpus", ["none"], [tmp_path / "corpus.npz"], batch_size=64, device="cpu")
    search_stage(tmp_path / "queries.npz", [tmp_path / "corpus.npz"], tmp_path / "run.trec", k=1000, device="cpu")
    result = evaluate_stage(tmp_path / "run.trec", folder / "qrels" / "test.tsv", tmp_path / "eval.json")
    print(f"{name} zero-shot all-MiniLM-L6-v2: {result['metrics']} in {time.perf_counter() - started:.0f} s")
    assert result["num_queries"] == queries
    assert result["metrics"]["ndcg@10"] == pytest.approx(ndcg, abs=0.0005)
